//! Masking secrets in everything rb shows or records: text, the kept tail of a stream,
//! JSON (outputs, configurations). One [`Masker`] knows every form a secret takes.

use super::environment;

/// Replaces every secret value in text with `***`: the value itself and every encoding of it
/// that rb's own templates produce (`tojson`, `escape`, `shell_quote`, a list or
/// mapping rendered whole, `debug()`), so a password holding `'`, `"`, `\\`, `<` or `&` is
/// masked however it was written into a command. Values under 4 bytes are masked only where
/// they are the whole text (masking `ab` everywhere would garble ordinary output).
#[derive(Debug, Clone, Default)]
pub struct Masker {
    secrets: Vec<String>,
}

/// How a value is written by each encoding a template can apply to a secret.
const ENCODINGS: &[&str] = &[
    "{{ v | tojson }}",
    "{{ v | escape }}",
    "{{ v | shell_quote }}",
    "{{ [v] }}",
    "{{ debug(v) }}",
];

/// Every form of `secret` an encoding produces, without the quotes or brackets the encoding
/// puts around any value (found by rendering the empty string the same way).
fn encoded_forms(secret: &str) -> Vec<String> {
    let env = environment();
    let render = |t: &str, v: &str| env.render_str(t, minijinja::context! { v => v }).ok();
    let mut forms = vec![secret.to_owned()];
    for t in ENCODINGS {
        let (Some(full), Some(empty)) = (render(t, secret), render(t, "")) else {
            continue;
        };
        let prefix = full
            .bytes()
            .zip(empty.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let suffix = full
            .bytes()
            .rev()
            .zip(empty.bytes().rev())
            .take_while(|(a, b)| a == b)
            .count()
            .min(full.len() - prefix);
        let inner = full
            .get(prefix..full.len() - suffix)
            .unwrap_or(full.as_str());
        forms.push(inner.to_owned());
    }
    forms
}

impl Masker {
    /// Mask these values and their encodings.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut all: Vec<String> = secrets
            .into_iter()
            .filter(|s| !s.is_empty())
            .flat_map(|s| encoded_forms(&s))
            .filter(|s| !s.is_empty())
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Self { secrets: all }
    }

    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            if s.len() >= 4 {
                out = out.replace(s.as_str(), "***");
            } else if out == *s {
                out = "***".into();
            }
        }
        out
    }

    /// The longest text one secret can be written as: output kept for masking must reach this
    /// far past what is finally kept, so no secret is cut in half before it is masked.
    pub fn longest(&self) -> usize {
        self.secrets.first().map_or(0, String::len)
    }

    /// Mask `text`, then keep at most its last `cap` bytes (at a character boundary, `…`
    /// first when something was dropped or `text` already started with one). `cut`: `text` is
    /// what a [`crate::docker::TailBuffer`] kept of a longer stream (`…` first), so a secret
    /// that began before it may end in its first [`Masker::longest`] bytes: those are dropped
    /// (the buffer keeps that much more than `cap` for this).
    pub fn mask_tail(&self, text: &str, cap: usize, cut: bool) -> String {
        let mut masked = self.mask(text);
        if cut && !self.is_empty() {
            let body = masked.strip_prefix('…').unwrap_or(&masked);
            let mut start = self.longest().min(body.len());
            while !body.is_char_boundary(start) {
                start += 1;
            }
            masked = format!("…{}", &body[start..]);
        }
        if masked.len() <= cap {
            return masked;
        }
        let mut start = masked.len() - cap;
        while !masked.is_char_boundary(start) {
            start += 1;
        }
        format!("…{}", &masked[start..])
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// A JSON value with every secret masked, in every string: keys (file names) as well as
    /// values, at any depth.
    #[must_use]
    pub fn mask_json(&self, v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value as Json;
        if self.is_empty() {
            return v;
        }
        match v {
            Json::String(s) => Json::String(self.mask(&s)),
            Json::Array(a) => Json::Array(a.into_iter().map(|x| self.mask_json(x)).collect()),
            Json::Object(o) => Json::Object(self.mask_map(o)),
            other => other,
        }
    }

    /// [`Masker::mask_json`] of a JSON object (a step's outputs).
    #[must_use]
    pub fn mask_map(
        &self,
        map: serde_json::Map<String, serde_json::Value>,
    ) -> serde_json::Map<String, serde_json::Value> {
        if self.is_empty() {
            return map;
        }
        map.into_iter()
            .map(|(k, v)| (self.mask(&k), self.mask_json(v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;
    use proptest::prelude::*;

    #[test]
    fn masking() {
        let m = Masker::new(["s3cr3t-pw".to_string()]);
        assert_eq!(m.mask("password=s3cr3t-pw;"), "password=***;");
    }

    #[test]
    fn every_encoding_rb_produces_of_a_secret_is_masked() {
        let pw = r#"p'a"s\s<w>&rd/é x"#;
        let m = Masker::new([pw.to_owned()]);
        let env = environment();
        let mut templates: Vec<&str> = ENCODINGS.to_vec();
        templates.extend(["{{ v }}", "{{ {'k': v} }}", "{{ [v, v] }}", "{{ v | e }}"]);
        for t in templates {
            let out = env.render_str(t, context! { v => pw }).unwrap();
            let masked = m.mask(&out);
            // Whatever is left may hold quotes or brackets, never a piece of the secret.
            for piece in ["p'a", "s<w", "w>&", "rd/", "&amp;", "\\u0027", "%27"] {
                assert!(!masked.contains(piece), "{t}: {out} → {masked}");
            }
            assert!(masked.contains("***"), "{t}: {out} → {masked}");
        }
    }

    #[test]
    fn a_secret_straddling_the_capture_cut_is_masked_whole() {
        let m = Masker::new(["0123456789".to_owned()]);
        let text = format!("{}0123456789tail", "x".repeat(100));
        // Kept: the last 12 bytes; the secret starts 14 bytes from the end.
        let kept = m.mask_tail(&text, 12, false);
        assert!(!kept.contains("89"), "{kept}");
        assert!(kept.ends_with("***tail"), "{kept}");
        assert!(m.longest() >= 10);
    }

    #[test]
    fn a_secret_cut_by_the_tail_buffer_is_not_shown_in_part() {
        let m = Masker::new(["ABCDEFGH".to_owned()]);
        let mut tail = crate::docker::TailBuffer::new(10 + m.longest());
        tail.push(b"ABCDEFGHABCDEFGHabcd");
        // The buffer starts inside the first secret; masking the second one makes room for
        // what is left of the first in the last 10 bytes.
        let kept = m.mask_tail(&tail.text(), 10, tail.cut());
        assert!(!kept.chars().any(|c| c.is_ascii_uppercase()), "{kept}");
        assert!(kept.starts_with('…') && kept.ends_with("*abcd"), "{kept}");
    }

    /// A stream of filler (lowercase) and secrets (uppercase and the characters encodings
    /// escape), its tail kept as a process step keeps it: nothing uppercase survives.
    fn stream() -> impl Strategy<Value = (String, Vec<(String, bool)>, usize)> {
        (
            "[A-Z][A-Z'\"\\\\<>&]{3,15}",
            proptest::collection::vec(("[a-z \n]{0,30}", any::<bool>()), 0..12),
            1usize..64,
        )
    }

    /// Every encoding of the secret a template can write, inside filler.
    fn rendered_forms(secret: &str) -> Vec<String> {
        let env = environment();
        let mut templates: Vec<&str> = ENCODINGS.to_vec();
        templates.extend(["{{ v }}", "{{ {'k': v} }}", "{{ [v, v] }}", "{{ v | e }}"]);
        templates
            .into_iter()
            .map(|t| {
                let t = format!("before {t} after");
                env.render_str(&t, context! { v => secret }).unwrap()
            })
            .collect()
    }

    proptest! {
        #[test]
        fn no_output_form_shows_a_secret((secret, chunks, cap) in stream()) {
            let m = Masker::new([secret.clone()]);
            let leaks = |out: &str| out.chars().any(|c| c.is_ascii_uppercase());
            // Text written by each encoding.
            for text in rendered_forms(&secret) {
                let masked = m.mask(&text);
                prop_assert!(!leaks(&masked), "{text:?} → {masked:?}");
            }
            // The kept tail of a stream, cut anywhere (a secret straddling either end).
            let mut tail = crate::docker::TailBuffer::new(cap + m.longest());
            let mut whole = String::new();
            for (filler, with_secret) in &chunks {
                whole.push_str(filler);
                if *with_secret {
                    whole.push_str(&secret);
                }
            }
            for piece in whole.as_bytes().chunks(7) {
                tail.push(piece);
            }
            let kept = m.mask_tail(&tail.text(), cap, tail.cut());
            prop_assert!(!leaks(&kept), "{whole:?} → {kept:?}");
            prop_assert!(kept.len() <= cap + '…'.len_utf8(), "{kept:?}");
            // JSON, in keys and values at any depth.
            let json = serde_json::json!({
                format!("{whole}.dump"): [whole.clone(), { "k": whole.clone() }],
                "n": 1,
            });
            let masked = m.mask_json(json).to_string();
            prop_assert!(!leaks(&masked), "{masked}");
        }
    }
}
