//! A store as the runbook declares it (`stores:`), and the `STORE:KEY` addresses steps use.

use crate::duration::Dur;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An object store backups are written to and read from: S3 or an S3-compatible service
/// (Garage, `MinIO`, Ceph, R2), Google Cloud Storage, Azure Blob Storage, or a local directory.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreSpec {
    /// Where objects go: `s3://BUCKET/PREFIX`, `gs://BUCKET/PREFIX`,
    /// `az://CONTAINER/PREFIX`, or `file:///DIR` (a local directory, for tests and NFS).
    pub url: String,
    /// The service's address for S3-compatible services (`http://127.0.0.1:3900`); plain
    /// `http://` is allowed only when written here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The region (S3; Garage's default is `garage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The secret holding the S3 access key id (else the provider's standard chain:
    /// `AWS_ACCESS_KEY_ID`, web identity, instance metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The secret holding the S3 secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// The secret holding an S3 session token (temporary credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// The secret holding a GCS service account key (JSON); else `GOOGLE_*` variables or the
    /// instance's account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_key: Option<String>,
    /// The Azure storage account name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The secret holding the Azure storage account key; else `AZURE_*` variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    /// How long a request is retried (with exponential backoff) on transient errors before
    /// the step fails (default 2m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_timeout: Option<Dur>,
    /// What this store is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl StoreSpec {
    /// The secrets this store's credentials come from, with the field naming each.
    pub fn secret_refs(&self) -> Vec<(&'static str, &str)> {
        [
            ("access_key_id", &self.access_key_id),
            ("secret_access_key", &self.secret_access_key),
            ("session_token", &self.session_token),
            ("service_account_key", &self.service_account_key),
            ("access_key", &self.access_key),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
        .collect()
    }
}

/// One line for `rb plan`: the url, endpoint and region, and `***` for each credential.
pub fn describe(name: &str, spec: &StoreSpec) -> String {
    let mut parts = Vec::new();
    if let Some(e) = &spec.endpoint {
        parts.push(format!("endpoint {e}"));
    }
    if let Some(r) = &spec.region {
        parts.push(format!("region {r}"));
    }
    if let Some(a) = &spec.account {
        parts.push(format!("account {a}"));
    }
    let creds: Vec<String> = spec
        .secret_refs()
        .iter()
        .map(|(field, _)| format!("{field} ***"))
        .collect();
    if creds.is_empty() {
        parts.push("credentials from the environment".to_owned());
    } else {
        parts.extend(creds);
    }
    format!("{name} = {} ({})", spec.url, parts.join(", "))
}

/// The stores with `url`, `endpoint` and `region` rendered: they may name `params`, `vars`
/// and `env` (`url: "{{ params.store }}"`, so one runbook serves local-only and off-site runs).
/// A field that does not render stays as written (using the store then says why).
pub fn rendered(
    specs: &std::collections::BTreeMap<String, StoreSpec>,
    ctx: &minijinja::Value,
) -> std::collections::BTreeMap<String, StoreSpec> {
    let env = crate::template::environment();
    let render = |text: &mut String| {
        if text.contains("{{")
            && let Ok(r) = crate::template::render(&env, text, ctx.clone())
        {
            *text = r;
        }
    };
    specs
        .iter()
        .map(|(name, spec)| {
            let mut spec = spec.clone();
            render(&mut spec.url);
            spec.endpoint.iter_mut().for_each(render);
            spec.region.iter_mut().for_each(render);
            // An optional field given by a parameter left empty is not given.
            spec.endpoint = spec.endpoint.take().filter(|e| !e.is_empty());
            spec.region = spec.region.take().filter(|r| !r.is_empty());
            (name.clone(), spec)
        })
        .collect()
}

/// Whether a store's url is a template (known only once params are given).
#[must_use]
pub fn is_templated(spec: &StoreSpec) -> bool {
    spec.url.contains("{{")
}

/// [`describe`] for every store.
pub fn describe_all(stores: &std::collections::BTreeMap<String, StoreSpec>) -> Vec<String> {
    stores.iter().map(|(n, s)| describe(n, s)).collect()
}

/// The kind of service a store url names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    S3,
    Gcs,
    Azure,
    File,
}

/// A parsed store url.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    pub scheme: Scheme,
    /// The bucket (container for Azure); empty for `file://`.
    pub bucket: String,
    /// The prefix inside the bucket (no leading or trailing `/`); the directory for `file://`.
    pub prefix: String,
}

impl StoreUrl {
    /// Parses `s3://bucket/prefix`, `gs://…`, `az://…`, `file:///dir`; the error says what
    /// is wrong in a sentence fragment.
    pub fn parse(url: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(format!(
                "`{url}` is not a store url (`s3://BUCKET/PREFIX`, `gs://…`, `az://…`, `file:///DIR`)"
            ));
        };
        let scheme = match scheme {
            "s3" => Scheme::S3,
            "gs" => Scheme::Gcs,
            "az" | "azure" => Scheme::Azure,
            "file" => Scheme::File,
            other => {
                return Err(format!(
                    "unknown store scheme `{other}://` (s3, gs, az or file)"
                ));
            }
        };
        if scheme == Scheme::File {
            if !rest.starts_with('/') || rest.len() < 2 {
                return Err(format!(
                    "`{url}`: a `file://` store names an absolute directory (`file:///srv/backups`)"
                ));
            }
            return Ok(Self {
                scheme,
                bucket: String::new(),
                prefix: rest.trim_end_matches('/').to_owned(),
            });
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if !valid_bucket(bucket) {
            return Err(format!(
                "`{bucket}` is not a bucket name (3 to 63 lowercase letters, digits, `.` and `-`)"
            ));
        }
        Ok(Self {
            scheme,
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }
}

fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && b.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// A `STORE:KEY` address of an object (or `STORE:PREFIX` of several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub store: String,
    /// The key below the store's prefix (no leading `/`).
    pub key: String,
}

impl Address {
    /// Parses `STORE:KEY`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some((store, key)) = text.split_once(':') else {
            return Err(format!(
                "`{text}` is not an object address: write `STORE:KEY` (`offsite:db/2026-01-01.dump`)"
            ));
        };
        let key = key.trim_start_matches('/');
        if store.is_empty() {
            return Err(format!("`{text}`: the store name before `:` is empty"));
        }
        if key.split('/').any(|s| s == ".." || s == ".") {
            return Err(format!(
                "`{text}`: a key may not contain `.` or `..` segments"
            ));
        }
        Ok(Self {
            store: store.to_owned(),
            key: key.to_owned(),
        })
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.store, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_bucket_and_prefix() {
        let u = StoreUrl::parse("s3://rb-backups/db/daily/").unwrap();
        assert_eq!(
            (u.scheme, u.bucket.as_str(), u.prefix.as_str()),
            (Scheme::S3, "rb-backups", "db/daily")
        );
        let f = StoreUrl::parse("file:///srv/b/").unwrap();
        assert_eq!((f.scheme, f.prefix.as_str()), (Scheme::File, "/srv/b"));
        assert!(
            StoreUrl::parse("ftp://x/y")
                .unwrap_err()
                .contains("unknown store scheme")
        );
        assert!(
            StoreUrl::parse("s3://A_B")
                .unwrap_err()
                .contains("not a bucket name")
        );
        assert!(StoreUrl::parse("file://rel").is_err());
        assert!(StoreUrl::parse("backups").is_err());
    }

    #[test]
    fn addresses_split_store_and_key() {
        let a = Address::parse("offsite:/db/x.dump").unwrap();
        assert_eq!((a.store.as_str(), a.key.as_str()), ("offsite", "db/x.dump"));
        assert!(Address::parse("nocolon").is_err());
        assert!(Address::parse("s:../x").is_err());
    }
}
