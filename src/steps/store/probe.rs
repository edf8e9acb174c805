//! `rb plan --check` for stores: one read-only list request per store shows it is reachable,
//! the credentials are accepted, the bucket exists and listing is allowed.

use futures_util::StreamExt;
use object_store::ObjectStore as _;

/// One probe per store (nothing is written): the store's name, whether it answered, and what
/// was found.
pub async fn all(
    stores: &std::collections::BTreeMap<String, super::StoreSpec>,
    secrets: &std::collections::BTreeMap<String, String>,
) -> Vec<(String, bool, String)> {
    if stores.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (name, spec) in stores {
        // A store given by a parameter left empty is not used by this run.
        if spec.url.is_empty() {
            continue;
        }
        // A probe answers quickly: a store that is down is not retried for minutes.
        let mut spec = spec.clone();
        spec.retry_timeout = Some(crate::duration::Dur(std::time::Duration::from_secs(5)));
        let (ok, detail) = match super::client::connect(name, &spec, secrets) {
            Err(e) => (false, e),
            Ok(store) => {
                let prefix = store.path("");
                let first = store.inner.list(Some(&prefix)).next().await;
                match first {
                    None | Some(Ok(_)) => (
                        true,
                        format!(
                            "{}: reachable, credentials accepted, listing allowed",
                            store.describe()
                        ),
                    ),
                    Some(Err(e)) => (
                        false,
                        format!("{}: {}", store.describe(), super::client::explain(&e)),
                    ),
                }
            }
        };
        out.push((name.clone(), ok, detail));
    }
    out
}
