//! `require`: the file that makes a matched entry a complete backup.
//!
//! A backup run that fails half-way leaves a directory (or file) that matches the glob and is
//! dated like a good backup. Counted, it would take a bucket and push a good backup out; so an
//! entry without its required file is neither counted nor removed.

use std::borrow::Cow;
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The placeholder for the entry name, which makes the required file a sibling of the entry.
const NAME: &str = "{name}";

/// A file each matched entry needs to count as complete: `SHA256SUMS` (inside a matched
/// directory) or `{name}.sha256` (next to a matched entry, in the backup directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Require(String);

/// Why a `require` text is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid `require` `{text}`: {problem}; write a relative path inside a matched directory \
     (`SHA256SUMS`) or one with `{{name}}` for a file next to a matched entry (`{{name}}.sha256`)"
)]
pub struct RequireError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl FromStr for Require {
    type Err = RequireError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |problem| RequireError {
            text: text.to_owned(),
            problem,
        };
        if text.is_empty() {
            return Err(fail("it is empty"));
        }
        let normal = Path::new(text)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !normal {
            return Err(fail(
                "it must stay inside the entry or the backup directory",
            ));
        }
        if text == NAME {
            return Err(fail("it names the entry itself"));
        }
        Ok(Require(text.to_owned()))
    }
}

/// Whether an entry is complete, and the required file that lives outside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completeness {
    /// The required file exists; `companion` is it when it is a sibling of the entry, to be
    /// removed with the entry.
    Complete {
        /// The sibling required file, if the requirement names one.
        companion: Option<PathBuf>,
    },
    /// Why the entry is incomplete.
    Incomplete(String),
}

impl Require {
    /// Whether the entry `name` of `dir` has its required file (a regular file, links
    /// followed). A requirement without `{name}` is looked for inside the entry, so a matched
    /// file that is not a directory is incomplete.
    pub fn check(&self, dir: &Path, name: &str) -> Completeness {
        let entry = dir.join(name);
        let (path, companion) = if self.0.contains(NAME) {
            let sibling = dir.join(self.0.replace(NAME, name));
            (sibling.clone(), Some(sibling))
        } else {
            if !fs::symlink_metadata(&entry).is_ok_and(|m| m.is_dir()) {
                return Completeness::Incomplete(format!(
                    "not a directory, so it cannot hold `{}` (for a file next to it, write \
                     `require: \"{NAME}.sha256\"`)",
                    self.0
                ));
            }
            (entry.join(&self.0), None)
        };
        if fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            Completeness::Complete { companion }
        } else {
            let shown = path.strip_prefix(dir).unwrap_or(&path);
            Completeness::Incomplete(format!("`{}` is missing", shown.display()))
        }
    }
}

impl fmt::Display for Require {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Require {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Require {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl JsonSchema for Require {
    fn schema_name() -> Cow<'static, str> {
        "Require".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "description": "A file each matched entry needs to count as a complete backup: a \
                relative path inside a matched directory (`SHA256SUMS`), or a path with \
                `{name}` for a file next to the entry (`{name}.sha256`). Entries without it \
                are neither counted nor removed.",
            "examples": ["SHA256SUMS", "{name}.sha256"],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_relative_paths_and_refuses_escapes() {
        for ok in ["SHA256SUMS", "meta/done", "{name}.sha256", "./SHA256SUMS"] {
            assert_eq!(ok.parse::<Require>().unwrap().to_string(), ok);
        }
        for (text, problem) in [
            ("", "it is empty"),
            ("/etc/passwd", "it must stay inside"),
            ("../x", "it must stay inside"),
            ("a/../../x", "it must stay inside"),
            ("{name}", "it names the entry itself"),
        ] {
            let err = text.parse::<Require>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid `require` `{text}`: {problem}")),
                "{err}"
            );
        }
    }

    #[test]
    fn checks_inside_directories_and_next_to_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("20240101")).unwrap();
        fs::write(root.join("20240101/SHA256SUMS"), "").unwrap();
        fs::create_dir(root.join("20240102")).unwrap();
        fs::write(root.join("db.dump"), "x").unwrap();
        fs::write(root.join("db.dump.sha256"), "x").unwrap();
        fs::write(root.join("half.dump"), "x").unwrap();

        let inside: Require = "SHA256SUMS".parse().unwrap();
        let complete = Completeness::Complete { companion: None };
        assert_eq!(inside.check(root, "20240101"), complete);
        assert_eq!(
            inside.check(root, "20240102"),
            Completeness::Incomplete("`20240102/SHA256SUMS` is missing".into())
        );
        let Completeness::Incomplete(why) = inside.check(root, "db.dump") else {
            panic!("a file cannot hold SHA256SUMS");
        };
        assert!(why.starts_with("not a directory"), "{why}");

        let sibling: Require = "{name}.sha256".parse().unwrap();
        assert_eq!(
            sibling.check(root, "db.dump"),
            Completeness::Complete {
                companion: Some(root.join("db.dump.sha256"))
            }
        );
        assert_eq!(
            sibling.check(root, "half.dump"),
            Completeness::Incomplete("`half.dump.sha256` is missing".into())
        );
    }
}
