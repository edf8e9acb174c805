//! Checks across a loaded runbook: ids, needs, cycles, step configs, templates, objectives.
//! Pure: it reads the model and returns diagnostics.

use super::diagnostic::{Diagnostic, suggest};
use super::graph::{self, Dag};
use super::load::valid_id;
use super::model::{Runbook, Step};
use super::params;
use crate::template::{self, Finding};
use crate::yaml::node::Node;
use miette::SourceSpan;
use minijinja::Environment;
use std::collections::HashMap;

/// Validate a loaded runbook; returns its graph for the planner along with the diagnostics.
pub fn validate(runbook: &Runbook, diags: &mut Vec<Diagnostic>) -> Dag {
    check_ids(&runbook.steps, diags);
    let dag = graph::resolve(&runbook.steps, diags);
    let cycles = dag.cycles();
    for cycle in &cycles {
        diags.push(cycle_diagnostic(&runbook.steps, cycle));
    }
    params::check_specs(runbook, diags);
    check_secrets(runbook, diags);
    super::notify::check(runbook, diags);
    check_configs(runbook, diags);
    super::stores::check(runbook, diags);
    crate::runbook::for_each::check(runbook, diags);
    check_objectives(runbook, diags);
    let ancestors = if cycles.is_empty() {
        dag.ancestors()
    } else {
        vec![vec![false; runbook.steps.len()]; runbook.steps.len()]
    };
    check_undoes(
        &runbook.steps,
        cycles.is_empty().then_some(&ancestors),
        diags,
    );
    Templates::new(runbook, &ancestors).check(diags);
    diags.sort_by_key(Diagnostic::offset);
    dag
}

fn check_ids(steps: &[Step], diags: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, &Step> = HashMap::new();
    for step in steps {
        let span = id_span(step);
        if !valid_id(step.id()) {
            diags.push(
                Diagnostic::new("rb::invalid-id", format!("invalid step id `{}`", step.id()))
                    .label(span, "ids match [a-z][a-z0-9_-]*")
                    .help("use lowercase letters, digits, `_` and `-`, starting with a letter"),
            );
        }
        if let Some(first) = seen.get(step.id()) {
            diags.push(
                Diagnostic::new(
                    "rb::duplicate-id",
                    format!("duplicate step id `{}`", step.id()),
                )
                .label(span, "used again here")
                .label(id_span(first), "first used here")
                .help("step ids must be unique within a runbook"),
            );
        } else {
            seen.insert(step.id(), step);
        }
    }
}

/// `undoes` is for `always` steps and names steps this one follows (it can only undo what
/// ran before it).
fn check_undoes(steps: &[Step], ancestors: Option<&Vec<Vec<bool>>>, diags: &mut Vec<Diagnostic>) {
    let ids: Vec<&str> = steps.iter().map(Step::id).collect();
    for (i, step) in steps.iter().enumerate() {
        let Some(list) = step.node.get("undoes") else {
            continue;
        };
        if !step.common.always {
            diags.push(
                Diagnostic::new(
                    "rb::undoes",
                    format!("step `{}` has `undoes` but is not `always`", step.id()),
                )
                .label(list.span, "only an `always` step undoes another")
                .help("add `always: true`: a step that undoes others must also run after a failure or Ctrl-C"),
            );
        }
        let items = list.as_seq().unwrap_or(&[]);
        for (name, item) in step.common.undoes.iter().zip(items) {
            match ids.iter().position(|id| id == name) {
                None => diags.push(
                    Diagnostic::new(
                        "rb::unknown-step",
                        format!("step `{}` undoes unknown step `{name}`", step.id()),
                    )
                    .label(item.span, "no step has this id")
                    .help(suggest(name, &ids, "step ids")),
                ),
                Some(j) if ancestors.is_some_and(|a| !a[i][j]) => diags.push(
                    Diagnostic::new(
                        "rb::undoes",
                        format!(
                            "step `{}` undoes `{name}`, which does not run before it",
                            step.id()
                        ),
                    )
                    .label(item.span, "not among the steps it follows")
                    .help(format!(
                        "add `{name}` to the `needs` of `{}` (directly or through another step)",
                        step.id()
                    )),
                ),
                Some(_) => {}
            }
        }
    }
}

fn id_span(step: &Step) -> SourceSpan {
    step.node.get("id").map_or(step.node.span, |n| n.span)
}

fn cycle_diagnostic(steps: &[Step], cycle: &[usize]) -> Diagnostic {
    let mut names: Vec<String> = cycle
        .iter()
        .map(|&i| format!("`{}`", steps[i].id()))
        .collect();
    names.push(names[0].clone());
    let mut d = Diagnostic::new(
        "rb::cycle",
        format!("dependency cycle: {}", names.join(" → ")),
    )
    .help("remove one of these `needs` to break the cycle");
    for (k, &i) in cycle.iter().enumerate() {
        let next = cycle[(k + 1) % cycle.len()];
        let need = steps[next].id();
        d = d.label(
            graph::need_span(&steps[i], need),
            format!("`{}` needs `{need}`", steps[i].id()),
        );
    }
    d
}

fn check_secrets(runbook: &Runbook, diags: &mut Vec<Diagnostic>) {
    for (name, spec) in &runbook.secrets {
        if spec.env.is_some() == spec.file.is_some() {
            let span = runbook
                .root
                .get("secrets")
                .and_then(|s| s.get(name))
                .map_or(runbook.root.span, |n| n.span);
            diags.push(
                Diagnostic::new(
                    "rb::secret",
                    format!("secret `{name}` needs exactly one of `env` and `file`"),
                )
                .label(span, "here")
                .help("secrets come from the environment or a file, never from the runbook"),
            );
        }
    }
}

/// The node at a `.`-separated key path under a mapping.
fn node_at<'a>(node: &'a Node, path: &str) -> Option<&'a Node> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(node, |n, key| n.get(key))
}

fn holds_template(node: &Node) -> bool {
    let mut found = false;
    node.for_each_string(&mut |_, s| found |= s.contains("{{") || s.contains("{%"));
    found
}

fn check_configs(runbook: &Runbook, diags: &mut Vec<Diagnostic>) {
    let hosts: Vec<&str> = runbook.hosts.keys().map(String::as_str).collect();
    for step in &runbook.steps {
        let Some(kind) = &step.kind else { continue };
        let timeout = step.common.timeout.map(|t| t.0);
        for p in kind
            .problems()
            .into_iter()
            .chain(kind.timeout_problems(timeout))
        {
            // A value held by a template is known only once rendered (and decoded again).
            if !p.key.is_empty() && node_at(&step.node, &p.key).is_some_and(holds_template) {
                continue;
            }
            // The key's value, else the key, else (a key not written) the step's `type`.
            let span = step
                .node
                .get_entry(p.key.split('.').next().unwrap_or_default())
                .map(|(k, _)| k.span)
                .and_then(|k| node_at(&step.node, &p.key).map(|n| n.span).or(Some(k)))
                .unwrap_or_else(|| step.node.get("type").map_or(step.node.span, |n| n.span));
            diags.push(
                Diagnostic::new(
                    "rb::step-config",
                    format!("step `{}`: {}", step.id(), p.message),
                )
                .label(span, "here"),
            );
        }
        if let Some(host) = kind.touches().host
            && !host.contains("{{")
            && !hosts.contains(&host.as_str())
        {
            let span = step.node.get("host").map_or(step.node.span, |n| n.span);
            diags.push(
                Diagnostic::new(
                    "rb::unknown-host",
                    format!("step `{}` uses unknown host `{host}`", step.id()),
                )
                .label(span, "not a key of `hosts`")
                .help(suggest(&host, &hosts, "hosts")),
            );
        }
        if let Some(t) = step.common.timeout
            && t.0.is_zero()
        {
            let span = step.node.get("timeout").map_or(step.node.span, |n| n.span);
            diags.push(
                Diagnostic::new("rb::duration", "a timeout of zero can never be met")
                    .label(span, "here"),
            );
        }
    }
}

fn check_objectives(runbook: &Runbook, diags: &mut Vec<Diagnostic>) {
    let ids: Vec<&str> = runbook.steps.iter().map(Step::id).collect();
    check_restore_point(runbook, &ids, diags);
    let Some(ms) = runbook
        .root
        .get("objectives")
        .and_then(|o| o.get("milestones"))
        .and_then(|m| m.as_seq())
    else {
        return;
    };
    for (m, node) in runbook.objectives.milestones.iter().zip(ms) {
        let items = node.get("steps").and_then(|s| s.as_seq()).unwrap_or(&[]);
        for (name, item) in m.steps.iter().zip(items) {
            if !ids.contains(&name.as_str()) {
                diags.push(
                    Diagnostic::new(
                        "rb::unknown-step",
                        format!("milestone `{}` names unknown step `{name}`", m.name),
                    )
                    .label(item.span, "no step has this id")
                    .help(suggest(name, &ids, "step ids")),
                );
            }
        }
        if let (Some(total), true) = (
            runbook.objectives.rto,
            m.rto > runbook.objectives.rto.unwrap_or(m.rto),
        ) {
            diags.push(
                Diagnostic::new(
                    "rb::objective",
                    format!(
                        "milestone `{}` has an RTO beyond the runbook's ({total})",
                        m.name
                    ),
                )
                .label(node.get("rto").map_or(node.span, |n| n.span), "here"),
            );
        }
    }
}

/// `restore_point` names exactly one of a step or a param, and it exists.
fn check_restore_point(runbook: &Runbook, ids: &[&str], diags: &mut Vec<Diagnostic>) {
    let Some(rp) = &runbook.objectives.restore_point else {
        return;
    };
    let node = runbook
        .root
        .get("objectives")
        .and_then(|o| o.get("restore_point"));
    let span = |key: &str| {
        node.and_then(|n| n.get(key))
            .or(node)
            .map_or(runbook.root.span, |n| n.span)
    };
    match (&rp.step, &rp.param) {
        (Some(_), Some(_)) | (None, None) => diags.push(
            Diagnostic::new(
                "rb::objective",
                "`restore_point` needs exactly one of `step` or `param`",
            )
            .label(span("step"), "here"),
        ),
        (Some(step), None) if !ids.contains(&step.as_str()) => diags.push(
            Diagnostic::new(
                "rb::unknown-step",
                format!("`restore_point` names unknown step `{step}`"),
            )
            .label(span("step"), "no step has this id")
            .help(suggest(step, ids, "step ids")),
        ),
        (None, Some(param)) if !runbook.params.iter().any(|(k, _)| k == param) => {
            let names: Vec<&str> = runbook.params.iter().map(|(k, _)| k.as_str()).collect();
            diags.push(
                Diagnostic::new(
                    "rb::objective",
                    format!("`restore_point` names unknown param `{param}`"),
                )
                .label(span("param"), "no param has this name")
                .help(suggest(param, &names, "params")),
            );
        }
        _ => {}
    }
    if rp.output.is_some() && rp.step.is_none() {
        diags.push(
            Diagnostic::new("rb::objective", "`restore_point.output` needs `step`")
                .label(span("output"), "here"),
        );
    }
}

/// Template checks: syntax, names that can never be defined, outputs of non-ancestors.
struct Templates<'a> {
    runbook: &'a Runbook,
    ancestors: &'a [Vec<bool>],
    env: Environment<'static>,
    index: HashMap<&'a str, usize>,
}

/// Where a template is used, which decides what it may read.
enum Scope {
    /// The `k`th var: params, secrets, env, run, now and earlier vars.
    Var(usize),
    /// A step: all of the above, all vars, and outputs of the steps it needs.
    Step(usize),
    /// A lock name: params, env, run, now and all vars; no secrets (lock files and plans
    /// show the name) and no step outputs (locks are taken before the first step).
    Lock,
}

impl<'a> Templates<'a> {
    fn new(runbook: &'a Runbook, ancestors: &'a [Vec<bool>]) -> Self {
        let index = runbook
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id(), i))
            .collect();
        Self {
            runbook,
            ancestors,
            env: template::environment(),
            index,
        }
    }

    fn check(&self, diags: &mut Vec<Diagnostic>) {
        if let Some(vars) = self.runbook.root.get("vars").and_then(|v| v.as_map()) {
            for (k, (_, v)) in vars.iter().enumerate() {
                if let Some(text) = v.as_str() {
                    self.check_text(text, v.span, &Scope::Var(k), false, diags);
                }
            }
        }
        if let Some(locks) = self.runbook.root.get("locks").and_then(|v| v.as_seq()) {
            for lock in locks {
                if let Some(text) = lock.as_str() {
                    self.check_text(text, lock.span, &Scope::Lock, false, diags);
                }
            }
        }
        for (i, step) in self.runbook.steps.iter().enumerate() {
            step.config_node.for_each_string(&mut |node, text| {
                self.check_text(text, node.span, &Scope::Step(i), false, diags);
            });
            if let Some(d) = step.node.get("description")
                && let Some(text) = d.as_str()
            {
                self.check_text(text, d.span, &Scope::Step(i), false, diags);
            }
            if let Some(w) = step.node.get("when")
                && let Some(text) = w.as_str()
            {
                self.check_text(text, w.span, &Scope::Step(i), true, diags);
            }
            // Keys the type evaluates as expressions when the step runs.
            let expressions = step
                .kind
                .as_ref()
                .map_or(&[][..], |k| k.step_type().expressions);
            for key in expressions {
                let Some(value) = step.node.get(key) else {
                    continue;
                };
                let items = value.as_seq().unwrap_or(std::slice::from_ref(value));
                for item in items {
                    if let Some(text) = item.as_str() {
                        self.check_text(text, item.span, &Scope::Step(i), true, diags);
                    }
                }
            }
        }
    }

    fn check_text(
        &self,
        text: &str,
        span: SourceSpan,
        scope: &Scope,
        expression: bool,
        diags: &mut Vec<Diagnostic>,
    ) {
        let found = if expression {
            template::expression_references(&self.env, text)
        } else {
            template::references(&self.env, text)
        };
        match found {
            Err(Finding::Syntax { message, range }) => {
                let what = if expression { "expression" } else { "template" };
                let at = range
                    .and_then(|r| text.get(r))
                    .and_then(|snippet| self.locate(span, snippet))
                    .unwrap_or(span);
                diags.push(
                    Diagnostic::new(
                        "rb::template-syntax",
                        format!("{what} syntax error: {message}"),
                    )
                    .label(at, "here"),
                );
            }
            Ok(refs) => {
                for u in template::unknown_names(&self.env, text, expression) {
                    let at = self.locate(span, &u.name).unwrap_or(span);
                    diags.push(
                        Diagnostic::new(
                            "rb::unknown-filter",
                            format!("unknown {} `{}`", u.kind, u.name),
                        )
                        .label(at, format!("no such {}", u.kind))
                        .help(suggest(
                            &u.name,
                            &u.known,
                            &format!("{}s", u.kind),
                        )),
                    );
                }
                let unmaskable = if expression {
                    template::unmaskable_secret_use(&format!("{{{{ {text} }}}}"))
                } else {
                    template::unmaskable_secret_use(text)
                };
                if let Some(used) = unmaskable {
                    let at = self.locate(span, &used).unwrap_or(span);
                    diags.push(
                        Diagnostic::new(
                            "rb::secret-transformed",
                            format!("`{used}`: rb cannot mask a secret written this way"),
                        )
                        .label(at, "here")
                        .help(
                            "pass the secret as it is, or through `tojson`, `escape` or \
                             `shell_quote`, whose output rb masks",
                        ),
                    );
                }
                for name in refs {
                    if let Some(d) = self.check_name(&name, scope) {
                        let at = self.locate(span, &name).unwrap_or(span);
                        diags.push(d.label_first(at));
                    }
                }
            }
        }
    }

    /// Find `needle` inside the source text of a scalar, for a label inside the template.
    fn locate(&self, span: SourceSpan, needle: &str) -> Option<SourceSpan> {
        let src = self
            .runbook
            .source
            .get(span.offset()..span.offset() + span.len())?;
        let at = src.find(needle)?;
        Some((span.offset() + at, needle.len()).into())
    }

    fn check_name(&self, name: &str, scope: &Scope) -> Option<PendingDiag> {
        let mut parts = name.split('.');
        let root = parts.next().unwrap_or_default();
        let second = parts.next();
        // minijinja's global functions (`range`, `dict`, `namespace`, …) are always defined.
        if self.env.globals().any(|(g, _)| g == root) {
            return None;
        }
        let missing = |what: &str, known: Vec<&str>, key: &str| {
            Some(PendingDiag(
                Diagnostic::new("rb::undefined", format!("`{name}` is never defined"))
                    .help(suggest(key, &known, what)),
                "undefined",
            ))
        };
        match (root, second) {
            ("params", Some(p)) => {
                let known: Vec<&str> = self
                    .runbook
                    .params
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect();
                (!known.contains(&p))
                    .then(|| missing("params", known, p))
                    .flatten()
            }
            ("secrets", _) if matches!(scope, Scope::Lock) => Some(PendingDiag(
                Diagnostic::new(
                    "rb::secret-in-lock",
                    format!("`{name}`: a lock name is written to lock files and shown in plans"),
                )
                .help("name the target with params or vars, never with a secret"),
                "not allowed in a lock name",
            )),
            ("secrets", Some(p)) => {
                let known: Vec<&str> = self
                    .runbook
                    .secrets
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect();
                (!known.contains(&p))
                    .then(|| missing("secrets", known, p))
                    .flatten()
            }
            ("vars", Some(v)) => {
                let upto = match scope {
                    Scope::Var(k) => *k,
                    Scope::Step(_) | Scope::Lock => self.runbook.vars.len(),
                };
                let known: Vec<&str> = self.runbook.vars[..upto]
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect();
                if known.contains(&v) {
                    return None;
                }
                if self.runbook.vars.iter().any(|(n, _)| n == v) {
                    return Some(PendingDiag(
                        Diagnostic::new(
                            "rb::undefined",
                            format!("`{name}` is used before it is defined"),
                        )
                        .help("vars are computed in order: move this var after the one it uses"),
                        "defined later",
                    ));
                }
                missing("vars", known, v)
            }
            ("steps", Some(s)) => self.check_step_ref(name, s, scope),
            ("item" | "item_index" | "item_key", _) => match scope {
                Scope::Step(i) if self.runbook.steps[*i].common.for_each.is_some() => None,
                _ => Some(PendingDiag(
                    Diagnostic::new(
                        "rb::item-outside-for-each",
                        format!("`{name}` is defined only in a step with `for_each`"),
                    )
                    .help("add `for_each` to the step, or name the value with params or vars"),
                    "not in a `for_each` step",
                )),
            },
            ("run", Some("id" | "name"))
            | ("env" | "now", _)
            | ("params" | "vars" | "secrets" | "steps", None) => None,
            ("run", Some(other)) => missing("run fields", vec!["id", "name"], other),
            _ => missing("names", template::ROOTS.to_vec(), root),
        }
    }

    fn check_step_ref(&self, name: &str, target: &str, scope: &Scope) -> Option<PendingDiag> {
        let Scope::Step(me) = scope else {
            let what = if matches!(scope, Scope::Lock) {
                "locks are taken"
            } else {
                "vars are computed"
            };
            return Some(PendingDiag(
                Diagnostic::new(
                    "rb::undefined",
                    format!("`{name}`: {what} before any step runs"),
                )
                .help("use the step output in the step itself"),
                "not available here",
            ));
        };
        let ids: Vec<&str> = self.runbook.steps.iter().map(Step::id).collect();
        match self.index.get(target) {
            None => Some(PendingDiag(
                Diagnostic::new(
                    "rb::unknown-step",
                    format!("`{name}` refers to unknown step `{target}`"),
                )
                .help(suggest(target, &ids, "step ids")),
                "no such step",
            )),
            Some(&j) if self.runbook.steps[j].common.for_each.is_some() => Some(PendingDiag(
                Diagnostic::new(
                    "rb::group-outputs",
                    format!("`{name}`: `{target}` is a `for_each` group, one step per item"),
                )
                .help(format!(
                    "read one item's outputs: `steps['{target}[KEY]'].outputs.NAME`"
                )),
                "a group, not a step",
            )),
            Some(&j) if j == *me => Some(PendingDiag(
                Diagnostic::new(
                    "rb::not-ancestor",
                    format!("step `{target}` reads its own outputs"),
                ),
                "not available yet",
            )),
            // A step with a misspelt need already has its diagnostic (with did-you-mean):
            // "does not run before it" would only send the reader the wrong way.
            Some(_) if self.has_unknown_need(*me) => None,
            Some(&j) if !self.ancestors[*me][j] => Some(PendingDiag(
                Diagnostic::new(
                    "rb::not-ancestor",
                    format!(
                        "step `{}` uses `{name}`, but `{target}` does not run before it",
                        self.runbook.steps[*me].id()
                    ),
                )
                .help(format!(
                    "add `{target}` to the `needs` of `{}`",
                    self.runbook.steps[*me].id()
                )),
                "not an ancestor",
            )),
            Some(&j) => Self::check_output_name(name, &self.runbook.steps[j]),
        }
    }

    /// Whether step `i` names a need that is no step's id.
    fn has_unknown_need(&self, i: usize) -> bool {
        self.runbook.steps[i]
            .common
            .needs
            .iter()
            .flatten()
            .any(|n| !self.index.contains_key(n.as_str()))
    }

    /// `steps.X.status` or `steps.X.outputs.NAME` where step X's type produces NAME.
    fn check_output_name(name: &str, target: &Step) -> Option<PendingDiag> {
        let mut parts = name.split('.').skip(2);
        let (field, output) = (parts.next()?, parts.next());
        if !matches!(field, "outputs" | "status") {
            return Some(PendingDiag(
                Diagnostic::new(
                    "rb::undefined",
                    format!("`{name}`: a step has `outputs` and `status`, not `{field}`"),
                )
                .help(suggest(field, &["outputs", "status"], "names")),
                "no such field",
            ));
        }
        let (Some(output), Some(known)) = (
            output,
            target.kind.as_ref().and_then(|k| k.step_type().outputs),
        ) else {
            return None;
        };
        if known.contains(&output) {
            return None;
        }
        let type_name = &target.common.type_name;
        Some(PendingDiag(
            Diagnostic::new(
                "rb::undefined",
                format!("`{name}`: a step of type `{type_name}` has no output `{output}`"),
            )
            .help(suggest(output, known, "outputs")),
            "never produced",
        ))
    }
}

/// A diagnostic still waiting for the label that points into the template.
struct PendingDiag(Diagnostic, &'static str);

impl PendingDiag {
    fn label_first(self, span: SourceSpan) -> Diagnostic {
        let mut d = self.0;
        d.labels.insert(0, (span, self.1.to_owned()));
        d
    }
}
