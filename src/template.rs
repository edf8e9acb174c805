//! Templates: the minijinja environment rb renders every step string with, its filters,
//! the placeholders a plan shows for values known only at run time, and secret masking.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use minijinja::value::{Enumerator, Object, ObjectRepr, Value};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

pub mod context;
mod mask;
pub use context::{Context, Mode, render_node};
pub use mask::Masker;

/// Instructions a template may execute before rendering stops (a loop bomb ends here).
pub const FUEL: u64 = 200_000;

/// Deepest macro recursion (`{% macro f() %}{{ f() }}{% endmacro %}`) before rendering stops.
/// minijinja's own limit (500) overflows a 2 MiB thread stack in a debug build; a runbook
/// has no use for more than a few levels.
pub const RECURSION: usize = 64;

/// Most bytes one template may render to: a list doubled 30 times and printed would take
/// hours and gigabytes, in a single fuel step. (An argument of a command may be at most
/// 128 KiB on Linux anyway.)
pub const MAX_OUTPUT: usize = 4 * 1024 * 1024;

/// What `omit` renders to: a field whose value is exactly this is left out (Ansible's
/// `omit`), as if the runbook had not written it.
pub const OMIT: &str = "__rb_omit__";

/// A field's rendered value.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// The text the template rendered to.
    Text(String),
    /// A list or mapping: a field that is a single `{{ expression }}` producing one.
    Native(serde_json::Value),
    /// `omit`: the field is left out.
    Omit,
}

/// Render a field's template. A field that is a single `{{ expression }}` evaluating to a
/// list or mapping gets that value (`command: "{{ ['sh', '-c', x] if x else omit }}"`);
/// one that renders to `omit` is left out; anything else is text. Bounded like [`render`].
pub fn render_field(env: &Environment<'static>, text: &str, ctx: Value) -> Result<Field, Error> {
    let text = text.to_owned();
    bounded(env, move |env| render_field_in(env, &text, ctx))
}

fn render_field_in(env: &Environment<'_>, text: &str, ctx: Value) -> Result<Field, Error> {
    if let Some(expr) = single_expression(text) {
        let value = env.compile_expression(expr)?.eval(ctx.clone())?;
        if matches!(
            value.kind(),
            minijinja::value::ValueKind::Seq | minijinja::value::ValueKind::Map
        ) {
            printable(&value)?;
            let json = serde_json::to_value(&value)
                .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
            return Ok(Field::Native(drop_omitted(json)));
        }
    }
    let out = render_in(env, text, ctx)?;
    Ok(if out == OMIT {
        Field::Omit
    } else {
        Field::Text(out)
    })
}

/// A list or mapping without the items and entries that are `omit`.
fn drop_omitted(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    let kept = |v: &J| v.as_str() != Some(OMIT);
    match v {
        J::Array(items) => J::Array(items.into_iter().filter(kept).map(drop_omitted).collect()),
        J::Object(map) => J::Object(
            map.into_iter()
                .filter(|(_, v)| kept(v))
                .map(|(k, v)| (k, drop_omitted(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The expression of a template that is exactly one `{{ … }}` and nothing else.
fn single_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.trim_start_matches('-').trim_end_matches('-');
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then_some(inner)
}

/// Render `text` with `ctx` on rb's environment: stopped with an error once the output
/// passes [`MAX_OUTPUT`], or once it has taken [`DEADLINE`].
pub fn render(env: &Environment<'static>, text: &str, ctx: Value) -> Result<String, Error> {
    let text = text.to_owned();
    bounded(env, move |env| render_in(env, &text, ctx))
}

/// Evaluate an expression (`when:`, `assert`) with `ctx`, bounded like [`render`].
pub fn eval(env: &Environment<'static>, expr: &str, ctx: Value) -> Result<Value, Error> {
    let expr = expr.to_owned();
    bounded(env, move |env| env.compile_expression(&expr)?.eval(ctx))
}

/// Longest one template may take to render (or an expression to evaluate). Fuel bounds
/// the instructions a template runs, not the work a single one does: minijinja keeps `+` on
/// lists lazy, so a list doubled 30 times costs 30 instructions, and `~` (or `format`, or
/// any filter that reads it as a string) then prints its two billion items in one. A
/// runbook's templates render in microseconds (a template that runs out of fuel in 0.2 s
/// in a debug build): ten times that is still an error within seconds.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// The error of a template stopped by a limit (time, output size, fuel, recursion), which
/// `rb validate` reports too: a runbook that cannot render whatever its params are.
#[derive(Debug)]
pub struct LimitExceeded;

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a template limit was exceeded")
    }
}

impl std::error::Error for LimitExceeded {}

/// Whether rendering stopped at one of rb's limits rather than on an error of the template.
pub fn is_limit(e: &Error) -> bool {
    e.kind() == ErrorKind::OutOfFuel
        || std::error::Error::source(e).is_some_and(<dyn std::error::Error>::is::<LimitExceeded>)
}

fn limit(detail: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, detail).with_source(LimitExceeded)
}

/// Run `work` with (a copy of) `env` on its own thread and wait for it at most [`DEADLINE`].
/// A render past the deadline is abandoned, not stopped (a thread cannot be, and minijinja
/// has no hook inside one operation): it ends with the process, and `rb` goes on at once
/// with a clear error.
fn bounded<T: Send + 'static>(
    env: &Environment<'static>,
    work: impl FnOnce(&Environment<'static>) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let env = env.clone();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("rb-render".into())
        // minijinja recurses per nested expression and macro call (RECURSION bounds it).
        .stack_size(8 * 1024 * 1024)
        .spawn(move || {
            let _ = tx.send(work(&env));
        })
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("cannot render: {e}")))?;
    match rx.recv_timeout(DEADLINE) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(limit(format!(
            "rendering took longer than {} s and was stopped (a list or string too large to build or print)",
            DEADLINE.as_secs()
        ))),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(Error::new(
            ErrorKind::InvalidOperation,
            "the template engine failed (a bug in rb)",
        )),
    }
}

fn render_in(env: &Environment<'_>, text: &str, ctx: Value) -> Result<String, Error> {
    let tmpl = env.template_from_str(text)?;
    let mut out = Capped(Vec::new());
    match tmpl.render_captured_to(ctx, &mut out) {
        Ok(_) => String::from_utf8(out.0)
            .map_err(|_| Error::new(ErrorKind::InvalidOperation, "output is not UTF-8")),
        Err(_) if out.0.len() >= MAX_OUTPUT => Err(limit(format!(
            "the output is larger than {} MiB",
            MAX_OUTPUT / 1_048_576
        ))),
        Err(e) => Err(e),
    }
}

/// A buffer that refuses to grow past [`MAX_OUTPUT`] (filled to it when it refuses).
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT {
            self.0.resize(MAX_OUTPUT, 0);
            return Err(std::io::Error::other("template output too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The names a template may start with.
pub const ROOTS: &[&str] = &["params", "vars", "secrets", "steps", "run", "now", "env"];

/// The environment every runbook string is rendered with: strict undefined, fuel-limited.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_global("omit", OMIT);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION);
    env.add_filter("strftime", strftime);
    env.add_filter("basename", |s: String| {
        std::path::Path::new(&s)
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    });
    env.add_filter("dirname", |s: String| {
        std::path::Path::new(&s)
            .parent()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    });
    env.add_filter("shell_quote", |s: String| shell_quote(&s));
    env.add_filter("format", format);
    env.set_formatter(|out, state, value| {
        printable(value)?;
        // minijinja prints booleans as Python does (`True`); runbooks write them as YAML and
        // `-p` do (`true`), and so do the programs they are passed to.
        if let Some(b) = yaml_bool(value) {
            return out.write_str(b).map_err(Error::from);
        }
        minijinja::escape_formatter(out, state, value)
    });
    env.add_filter(
        "int",
        |state: &minijinja::State,
         value: &Value,
         default: Option<Value>,
         base: Option<u32>,
         args: minijinja::value::Kwargs| {
            minijinja::filters::int(state, value, default, base, args)
                .map_err(|e| conversion_error(e, value, "int"))
        },
    );
    env.add_filter(
        "float",
        |state: &minijinja::State,
         value: &Value,
         default: Option<Value>,
         args: minijinja::value::Kwargs| {
            minijinja::filters::float(state, value, default, args)
                .map_err(|e| conversion_error(e, value, "float"))
        },
    );
    env.add_filter("string", |state: &minijinja::State, value: &Value| {
        printable(value)?;
        if let Some(b) = yaml_bool(value) {
            return Ok(Value::from(b));
        }
        minijinja::filters::string(state, value)
    });
    env.add_filter(
        "tojson",
        |value: &Value, indent: Option<Value>, args: minijinja::value::Kwargs| {
            printable(value)?;
            minijinja::filters::tojson(value, indent, args)
        },
    );
    env
}

/// "cannot convert 'abc' to int": the value, not minijinja's "invalid float literal".
fn conversion_error(e: Error, value: &Value, to: &str) -> Error {
    if e.kind() != minijinja::ErrorKind::InvalidOperation {
        return e; // out of fuel, a bad argument: as minijinja says it
    }
    Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!("cannot convert {} to {to}", truncate_repr(value)),
    )
}

/// A value as an error message shows it: quoted, at most 60 characters.
fn truncate_repr(value: &Value) -> String {
    let text = value.to_string();
    let short: String = text.chars().take(60).collect();
    let more = if short.len() < text.len() { "…" } else { "" };
    format!("'{short}{more}'")
}

/// `true` or `false` for a boolean, as YAML writes it.
fn yaml_bool(value: &Value) -> Option<&'static str> {
    (value.kind() == minijinja::value::ValueKind::Bool)
        .then(|| if value.is_true() { "true" } else { "false" })
}

/// Refuses a list or mapping too large to print (see [`MAX_PRINTED_ITEMS`]).
fn printable(value: &Value) -> Result<(), Error> {
    let mut budget = MAX_PRINTED_ITEMS;
    if too_many_items(value, &mut budget) {
        return Err(limit(format!(
            "cannot print more than {MAX_PRINTED_ITEMS} list or mapping items"
        )));
    }
    Ok(())
}

/// Most items (nested ones included) a printed list or mapping may hold: printing is one
/// instruction of fuel, and a list doubled 30 times holds a billion items.
pub const MAX_PRINTED_ITEMS: usize = 100_000;

/// Whether `value` holds more items than `budget` (counted down, nested values included).
fn too_many_items(value: &Value, budget: &mut usize) -> bool {
    let Some(n) = value.len().filter(|_| value.as_str().is_none()) else {
        return false;
    };
    if n > *budget {
        return true;
    }
    *budget -= n;
    let Ok(items) = value.try_iter() else {
        return false;
    };
    let is_map = value.kind() == minijinja::value::ValueKind::Map;
    for item in items {
        let nested = if is_map {
            value.get_item(&item).unwrap_or_default()
        } else {
            item
        };
        if too_many_items(&nested, budget) {
            return true;
        }
    }
    false
}

/// minijinja's `format`, except that a `%(key)` holding non-ASCII text is an error: minijinja
/// 3.1 reads the key byte by byte and panics inside a multi-byte character (found by fuzzing:
/// `{{ '%(é)s' | format(a=1) }}` crashed `rb plan`).
fn format(
    state: &mut minijinja::State,
    value: &Value,
    args: minijinja::value::Rest<minijinja::value::ValueOrKwargs>,
) -> Result<Value, Error> {
    if let Some(text) = value.as_str()
        && non_ascii_format_key(text)
    {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "format: a `%(key)` must be ASCII",
        ));
    }
    minijinja::filters::format(state, value, args)
}

/// Whether a printf-style string has a `%(` followed by non-ASCII text before its `)`.
fn non_ascii_format_key(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'%') => i += 2,
            Some(b'(') => {
                let key = &bytes[i + 2..];
                let end = key.iter().position(|&b| b == b')').unwrap_or(key.len());
                if !key[..end].is_ascii() {
                    return true;
                }
                i += 2 + end;
            }
            _ => i += 1,
        }
    }
    false
}

/// Quote a value for a POSIX shell line.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn strftime(value: &Value, format: &str) -> Result<String, Error> {
    if let Some(p) = value.downcast_object_ref::<Placeholder>() {
        return Ok(format!("<{}|strftime>", p.0));
    }
    let text = value.to_string();
    let time = parse_time(&text).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime: `{text}` is not a date or time"),
        )
    })?;
    let items: Vec<_> = chrono::format::StrftimeItems::new(format).collect();
    if items.contains(&chrono::format::Item::Error) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("strftime: invalid format `{format}`"),
        ));
    }
    Ok(time.format_with_items(items.into_iter()).to_string())
}

/// Read RFC 3339, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (UTC).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// A value known only at run time; renders as `<steps.dump.outputs.file>`.
#[derive(Debug)]
pub struct Placeholder(pub String);

impl Placeholder {
    pub fn value(path: impl Into<String>) -> Value {
        Value::from_object(Placeholder(path.into()))
    }
}

impl Object for Placeholder {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Placeholder::value(format!("{}.{key}", self.0)))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Empty
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.0)
    }
}

/// A template problem found without rendering: a syntax error or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The template does not parse; the byte range is within the template text.
    Syntax {
        message: String,
        range: Option<std::ops::Range<usize>>,
    },
}

/// The dotted names a template reads from its context (`params.x`, `steps.dump.outputs.file`).
pub fn references(env: &Environment<'_>, text: &str) -> Result<BTreeSet<String>, Finding> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(BTreeSet::new());
    }
    let tmpl = env.template_from_str(text).map_err(|e| syntax(&e))?;
    Ok(tmpl.undeclared_variables(true).into_iter().collect())
}

/// The dotted names an expression (`when`, `assert`) reads.
pub fn expression_references(
    env: &Environment<'_>,
    expr: &str,
) -> Result<BTreeSet<String>, Finding> {
    let e = env.compile_expression(expr).map_err(|e| syntax(&e))?;
    Ok(e.undeclared_variables(true).into_iter().collect())
}

fn syntax(e: &Error) -> Finding {
    Finding::Syntax {
        message: e
            .detail()
            .map_or_else(|| e.kind().to_string(), str::to_owned),
        range: e.range(),
    }
}

/// Filters a secret may pass through: the masker knows what they write (its encodings), or
/// they write nothing of the secret (`length`, `default`).
const MASKABLE_FILTERS: &[&str] = &[
    "tojson",
    "escape",
    "e",
    "shell_quote",
    "string",
    "safe",
    "length",
    "count",
    "default",
    "d",
];

/// The first use of a secret in `text` whose output the masker cannot recognise: a filter
/// other than [`MASKABLE_FILTERS`] (`reverse`, `upper`, `join`…), a slice or index
/// (`secrets.pw[1:]`), or a method call (`secrets.pw.upper()`). Read from the source, so a
/// secret reached another way (through a var, a loop) is the author's duty (README).
pub fn unmaskable_secret_use(text: &str) -> Option<String> {
    static USE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"\bsecrets(?:\s*\.\s*\w+|\s*\[[^\]]*\])?((?:\s*\|\s*\w+(?:\s*\([^)]*\))?)*)(\s*(?:\[|\.\s*\w+\s*\())?",
        )
        .expect("a valid regex")
    });
    static FILTER: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\|\s*(\w+)").expect("a valid regex"));
    if !text.contains("{{") && !text.contains("{%") {
        return None;
    }
    for found in USE.captures_iter(text) {
        let whole = found.get(0).map_or("", |m| m.as_str()).trim();
        if found.get(2).is_some() {
            return Some(whole.to_owned());
        }
        let filters = found.get(1).map_or("", |m| m.as_str());
        if FILTER
            .captures_iter(filters)
            .any(|f| !MASKABLE_FILTERS.contains(&&f[1]))
        {
            return Some(whole.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn filters() {
        let env = environment();
        let out = env
            .render_str(
                "{{ now | strftime('%Y%m%d_%H%M%S') }} {{ p | basename }} {{ p | dirname }} {{ q | shell_quote }}",
                context! { now => "2026-01-02T03:04:05Z", p => "/a/b/c.dump", q => "it's; rm" },
            )
            .unwrap();
        assert_eq!(out, r"20260102_030405 c.dump /a/b 'it'\''s; rm'");
    }

    #[test]
    fn undefined_is_an_error_and_placeholders_render() {
        let env = environment();
        assert!(env.render_str("{{ nope }}", context! {}).is_err());
        let out = env
            .render_str(
                "{{ steps.dump.outputs.file }}",
                context! { steps => Placeholder::value("steps") },
            )
            .unwrap();
        assert_eq!(out, "<steps.dump.outputs.file>");
    }

    #[test]
    fn references_are_dotted() {
        let env = environment();
        let refs =
            references(&env, "{{ params.a }}/{{ steps.x.outputs.file | basename }}").unwrap();
        assert!(refs.contains("params.a"), "{refs:?}");
        assert!(refs.contains("steps.x.outputs.file"), "{refs:?}");
        assert!(matches!(
            references(&env, "{{ a"),
            Err(Finding::Syntax { .. })
        ));
    }

    #[test]
    fn fuel_stops_loops() {
        let env = environment();
        let err = env
            .render_str(
                "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                context! {},
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OutOfFuel);
    }

    #[test]
    fn macro_recursion_stops_before_the_stack_does() {
        // Found by the property test: minijinja's default limit overflowed a test thread's
        // 2 MiB stack (an abort, not an error). A thread with a smaller stack still errors.
        let out = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(|| {
                environment()
                    .render_str(
                        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
                        context! {},
                    )
                    .unwrap_err()
                    .to_string()
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(out.contains("recursion limit exceeded"), "{out}");
    }

    #[test]
    fn format_refuses_non_ascii_keys_instead_of_panicking() {
        // Found by the `render_template` fuzz target (fuzz/regressions/render_template).
        let env = environment();
        for t in [
            "{{ '%(é)s' | format(a=1) }}",
            "{{ '%(é' | format() }}",
            "{{ '%(a)s %(ü' | format(a=1) }}",
        ] {
            let err = env.render_str(t, context! {}).unwrap_err();
            assert!(err.to_string().contains("must be ASCII"), "{t}: {err}");
        }
        let ok = |t: &str| env.render_str(t, context! {}).unwrap();
        assert_eq!(ok("{{ '%(a)s é' | format(a=1) }}"), "1 é");
        assert_eq!(ok("{{ '%%(é %s' | format(2) }}"), "%(é 2");
        assert_eq!(ok("{{ 'é %d' | format(3) }}"), "é 3");
    }

    #[test]
    fn transformations_the_masker_cannot_follow_are_found() {
        for t in [
            "{{ secrets.pw | reverse }}",
            "{{ secrets.pw | tojson | upper }}",
            "{{ secrets['pw'] | join('-') }}",
            "{{ secrets.pw[1:] }}",
            "{{ secrets.pw.upper() }}",
            "{{ secrets | list | first }}",
        ] {
            assert!(unmaskable_secret_use(t).is_some(), "{t}");
        }
        for t in [
            "{{ secrets.pw }}",
            "{{ secrets.pw | tojson }}",
            "{{ secrets.pw | shell_quote }}x{{ params.a | upper }}",
            "{{ secrets }}",
            "{{ secrets.pw | length }}",
            "secrets.pw | reverse",
        ] {
            assert_eq!(unmaskable_secret_use(t), None, "{t}");
        }
    }
}

/// Filter and test names minijinja and rb provide, the candidates of a did-you-mean (only
/// those the environment really has are offered).
const KNOWN_NAMES: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
    "strftime",
    "basename",
    "dirname",
    "shell_quote",
    "defined",
    "undefined",
    "none",
    "true",
    "false",
    "even",
    "odd",
    "divisibleby",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "in",
    "number",
    "string",
    "sequence",
    "mapping",
    "iterable",
    "startingwith",
    "endingwith",
    "filter",
    "test",
];

/// A filter or test a template names that the environment does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// `filter` or `test`.
    pub kind: &'static str,
    pub name: String,
    /// Names the environment has that are close to it.
    pub known: Vec<&'static str>,
}

/// Filters (`| name`) and tests (`is name`) a template or expression uses that rb does not
/// have: minijinja only finds them when it renders, which `rb validate` never does.
pub fn unknown_names(env: &Environment<'_>, text: &str, expression: bool) -> Vec<UnknownName> {
    static FILTER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\|\s*([A-Za-z_][A-Za-z0-9_]*)").expect("a valid regex")
    });
    static TEST: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\bis\s+(?:not\s+)?([A-Za-z_][A-Za-z0-9_]*)").expect("a valid regex")
    });
    let code = code_parts(text, expression);
    let mut out: Vec<UnknownName> = Vec::new();
    for (re, kind, probe) in [
        (&*FILTER, "filter", "none | {}"),
        (&*TEST, "test", "none is {}"),
    ] {
        for cap in re.captures_iter(&code) {
            let name = &cap[1];
            if out.iter().any(|u| u.name == name) || has(env, probe, name) {
                continue;
            }
            let known = KNOWN_NAMES
                .iter()
                .copied()
                .filter(|k| has(env, probe, k))
                .collect();
            out.push(UnknownName {
                kind,
                name: name.to_owned(),
                known,
            });
        }
    }
    out
}

/// Whether the environment has the filter or test `name` (`probe` with `{}` for it).
fn has(env: &Environment<'_>, probe: &str, name: &str) -> bool {
    let source = probe.replace("{}", name);
    let Ok(expr) = env.compile_expression(&source) else {
        return true; // not a name this check can judge: say nothing
    };
    !matches!(
        expr.eval(()).map_err(|e| e.kind()),
        Err(minijinja::ErrorKind::UnknownFilter | minijinja::ErrorKind::UnknownTest)
    )
}

/// The code of a template (its `{{ … }}` and `{% … %}` blocks; all of an expression), with
/// string literals blanked, so that a `|` inside a string is not read as a filter.
fn code_parts(text: &str, expression: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = expression;
    let mut quote: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if !in_code {
            if c == '{' && matches!(chars.peek(), Some('{' | '%')) {
                chars.next();
                in_code = true;
                out.push(' ');
            }
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if !expression && matches!(c, '}' | '%') && chars.peek() == Some(&'}') => {
                chars.next();
                in_code = false;
                out.push('\n');
            }
            None => out.push(c),
        }
    }
    out
}
