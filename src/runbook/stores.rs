//! `rb validate` for stores: urls, the secrets credentials name, and the stores steps use.

use crate::runbook::diagnostic::{Diagnostic, suggest};
use crate::runbook::model::Runbook;
use crate::steps::store::spec::{Address, StoreUrl};

/// Every problem with the runbook's `stores:` and the store addresses its steps name.
pub fn check(runbook: &Runbook, diags: &mut Vec<Diagnostic>) {
    let section = runbook.root.get("stores");
    let secrets: Vec<&str> = runbook.secrets.iter().map(|(n, _)| n.as_str()).collect();
    for (name, spec) in &runbook.stores {
        let node = section.and_then(|s| s.get(name));
        let span_of = |key: &str| {
            node.and_then(|n| n.get(key))
                .or(node)
                .map_or((0, 0).into(), |n| n.span)
        };
        if let Err(m) = StoreUrl::parse(&spec.url)
            .map_err(|m| (!crate::steps::store::spec::is_templated(spec)).then_some(m))
            && let Some(m) = m
        {
            diags.push(
                Diagnostic::new("rb::store-url", format!("store `{name}`: {m}"))
                    .label(span_of("url"), "here"),
            );
        }
        for (field, secret) in spec.secret_refs() {
            if !secrets.contains(&secret) {
                diags.push(
                    Diagnostic::new(
                        "rb::unknown-secret",
                        format!("store `{name}`: `{field}` names unknown secret `{secret}`"),
                    )
                    .label(span_of(field), "not a key of `secrets`")
                    .help(suggest(secret, &secrets, "secrets")),
                );
            }
        }
        if spec.access_key_id.is_some() != spec.secret_access_key.is_some() {
            diags.push(
                Diagnostic::new(
                    "rb::store-credentials",
                    format!("store `{name}`: give both `access_key_id` and `secret_access_key`, or neither"),
                )
                .label(span_of("url"), "this store"),
            );
        }
    }
    check_steps(runbook, &secrets, diags);
}

fn check_steps(runbook: &Runbook, secrets: &[&str], diags: &mut Vec<Diagnostic>) {
    let stores: Vec<&str> = runbook.stores.keys().map(String::as_str).collect();
    for step in &runbook.steps {
        let Some(kind) = &step.kind else { continue };
        for (key, text) in crate::steps::object::addresses(kind) {
            let Ok(a) = Address::parse(text) else {
                continue;
            };
            if a.store.contains("{{") || stores.contains(&a.store.as_str()) {
                continue;
            }
            let span = step.node.get(key).map_or(step.node.span, |n| n.span);
            diags.push(
                Diagnostic::new(
                    "rb::unknown-store",
                    format!("step `{}` uses unknown store `{}`", step.id(), a.store),
                )
                .label(span, "not a key of `stores`")
                .help(suggest(&a.store, &stores, "stores")),
            );
        }
        for (key, secret) in crate::steps::object::secrets(kind) {
            if secret.contains("{{") || secrets.contains(&secret) {
                continue;
            }
            let span = step.node.get(key).map_or(step.node.span, |n| n.span);
            diags.push(
                Diagnostic::new(
                    "rb::unknown-secret",
                    format!(
                        "step `{}`: `decrypt.identity` names unknown secret `{secret}`",
                        step.id()
                    ),
                )
                .label(span, "not a key of `secrets`")
                .help(suggest(secret, secrets, "secrets")),
            );
        }
    }
}
