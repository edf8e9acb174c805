//! Applying a retention policy to the entries of a backup directory.
//!
//! Planning only reads; [`apply`] only removes what a plan lists. The rules exist because of
//! the manual's `find /backups -mtime +30 -exec rm -rf {} \;`, which matched and deleted the
//! backup root itself: only direct entries of the directory that match the glob are
//! candidates, symlinks are removed and never followed, entries with no readable time are
//! kept, entries without the file `require` names (a failed run's half-filled directory) are
//! neither counted nor removed, and a plan that would leave no dated backup is refused.

use std::borrow::Cow;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::format::{Item, ParseErrorKind, StrftimeItems};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use globset::{Glob, GlobMatcher};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

use super::require::Completeness;
use super::{KeepCounts, KeepWithin, Require, Snapshot, decide_at, policy_is_empty};

/// Where an entry's backup time comes from; written `mtime` or `name:<strftime pattern>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeSource {
    /// The entry's own modification time (of a symlink itself, not its target), in UTC.
    Mtime,
    /// A chrono strftime pattern matching the whole entry name, read as UTC, e.g. `%Y%m%d`
    /// or `codexos_%Y%m%d_%H%M%S.dump.gz`. A pattern without a time of day gives midnight.
    Name(String),
}

/// Why a [`TimeSource`] text is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time source `{text}`: {problem}; expected `mtime` or `name:` and a strftime \
     pattern, e.g. `name:%Y%m%d` or `name:codexos_%Y%m%d_%H%M%S.dump.gz`"
)]
pub struct TimeSourceError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub problem: String,
}

impl FromStr for TimeSource {
    type Err = TimeSourceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |problem: &str| TimeSourceError {
            text: text.to_owned(),
            problem: problem.to_owned(),
        };
        if text == "mtime" {
            return Ok(TimeSource::Mtime);
        }
        let Some(pattern) = text.strip_prefix("name:") else {
            return Err(fail("unknown source"));
        };
        if pattern.is_empty() {
            return Err(fail("the pattern is empty"));
        }
        if StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error)) {
            return Err(fail("the pattern has an unknown `%` specifier"));
        }
        Ok(TimeSource::Name(pattern.to_owned()))
    }
}

impl fmt::Display for TimeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeSource::Mtime => f.write_str("mtime"),
            TimeSource::Name(pattern) => write!(f, "name:{pattern}"),
        }
    }
}

impl<'de> Deserialize<'de> for TimeSource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for TimeSource {
    fn schema_name() -> Cow<'static, str> {
        "TimeSource".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^(mtime|name:.+)$",
            "description": "Where a backup's time comes from: `mtime`, or `name:` and a \
                strftime pattern matching the whole entry name, e.g. `name:%Y%m%d`.",
            "examples": ["mtime", "name:%Y%m%d", "name:codexos_%Y%m%d_%H%M%S.dump.gz"],
        })
    }
}

/// A failure of planning or applying a prune; removal failures of single entries are not
/// errors but part of the [`PruneOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// Neither counts nor windows are set.
    #[error(
        "the retention policy is empty; restic would keep everything, which reads like \
         \"keep nothing\"; set at least one of `keep` (`last`, `hourly`, `daily`, `weekly`, \
         `monthly`, `yearly`) or `keep_within` (`within`, `hourly`, `daily`, `weekly`, \
         `monthly`, `yearly`) above zero"
    )]
    EmptyPolicy,
    /// The entry glob does not parse.
    #[error("invalid glob `{glob}`: {source}")]
    InvalidGlob {
        /// The glob as given.
        glob: String,
        /// globset's explanation.
        source: globset::Error,
    },
    /// The directory or one of its entries could not be listed.
    #[error("cannot read directory `{}`: {source}", dir.display())]
    ReadDir {
        /// The backup directory.
        dir: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The plan would remove every dated entry matching the glob.
    #[error(
        "refusing to remove all {count} dated entries matching `{glob}` in `{}`; \
         a retention policy keeps at least the newest backup",
        dir.display()
    )]
    WouldRemoveAll {
        /// The backup directory.
        dir: PathBuf,
        /// The entry glob.
        glob: String,
        /// How many entries the plan would have removed.
        count: usize,
    },
}

/// One matching entry of the directory and what the plan does with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PruneEntry {
    /// The entry's path: the directory joined with the entry name, never the directory.
    pub path: PathBuf,
    /// The entry name (lossily converted to UTF-8 for reports).
    pub name: String,
    /// The backup time, or why it could not be read (such entries are always kept).
    pub time: Result<NaiveDateTime, String>,
    /// Whether the entry stays (kept, undated or incomplete).
    pub keep: bool,
    /// Whether the entry lacks the file `require` names: then it is neither counted nor
    /// removed, and `reasons` says what is missing.
    pub incomplete: bool,
    /// Why it stays, in restic's words (`daily snapshot`, `within 30d`…), or
    /// `time unreadable: …` / `incomplete, left alone: …`; empty when removed.
    pub reasons: Vec<String>,
    /// The required file when it lies next to the entry (`{name}.sha256`); removed with it.
    pub companion: Option<PathBuf>,
}

/// What [`apply`] would do; made only by [`plan_prune`], so it always obeys its rules.
/// Planning without applying is the dry run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrunePlan {
    dir: PathBuf,
    entries: Vec<PruneEntry>,
}

impl PrunePlan {
    /// The backup directory; never itself an entry.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every matching entry: dated ones newest first, then undated ones by name, then
    /// incomplete ones by name.
    pub fn entries(&self) -> &[PruneEntry] {
        &self.entries
    }

    /// The entries the plan keeps, including those without a readable time, not the
    /// incomplete ones.
    pub fn kept(&self) -> impl Iterator<Item = &PruneEntry> {
        self.entries.iter().filter(|e| e.keep && !e.incomplete)
    }

    /// The entries left alone because they lack the required file.
    pub fn incomplete(&self) -> impl Iterator<Item = &PruneEntry> {
        self.entries.iter().filter(|e| e.incomplete)
    }

    /// The entries the plan removes.
    pub fn removed(&self) -> impl Iterator<Item = &PruneEntry> {
        self.entries.iter().filter(|e| !e.keep)
    }

    /// The entries kept because their time could not be read or parsed.
    pub fn undated(&self) -> impl Iterator<Item = &PruneEntry> {
        self.entries.iter().filter(|e| e.time.is_err())
    }
}

/// An entry [`apply`] could not remove.
#[derive(Debug)]
pub struct RemovalFailure {
    /// The entry's path.
    pub path: PathBuf,
    /// Why removal failed.
    pub error: io::Error,
}

/// What [`apply`] did.
#[derive(Debug, Default)]
pub struct PruneOutcome {
    /// Entries the plan kept, untouched.
    pub kept: Vec<PathBuf>,
    /// Entries removed.
    pub removed: Vec<PathBuf>,
    /// Entries the plan removes that could not be removed; the others were still tried.
    pub failed: Vec<RemovalFailure>,
}

/// Plan a prune of the direct entries of `dir` whose names match the glob `matcher`, timed by
/// `time_source`, with exactly restic's keep/remove decisions (see [`super::decide()`]).
///
/// Fails on an empty policy, a bad glob, an unreadable directory, or a plan that would remove
/// every dated entry. Entries whose time cannot be read are kept and listed with the reason;
/// with `require`, entries without the required file are left alone and not counted.
pub fn plan_prune(
    dir: &Path,
    matcher: &str,
    time_source: &TimeSource,
    keep: &KeepCounts,
    within: &KeepWithin,
    require: Option<&Require>,
) -> Result<PrunePlan, PruneError> {
    if policy_is_empty(keep, within) {
        return Err(PruneError::EmptyPolicy);
    }
    let glob = Glob::new(matcher)
        .map_err(|source| PruneError::InvalidGlob {
            glob: matcher.to_owned(),
            source,
        })?
        .compile_matcher();
    let Entries {
        dated,
        mut undated,
        mut incomplete,
    } = read_entries(dir, &glob, time_source, require)?;

    let snapshots: Vec<Snapshot> = dated
        .iter()
        .enumerate()
        .map(|(i, entry)| Snapshot {
            id: i.to_string(),
            time: entry.time.clone().unwrap_or_default(),
        })
        .collect();
    // Windows ignore future-dated entries when finding the newest, as restic does.
    let decisions = decide_at(&snapshots, keep, within, Utc::now().naive_utc());
    let mut entries = Vec::with_capacity(dated.len() + undated.len());
    for decision in decisions {
        let index: usize = decision.id.parse().unwrap_or_default();
        entries.push(PruneEntry {
            keep: decision.keep,
            reasons: decision.reasons,
            ..dated[index].clone()
        });
    }

    refuse_removing_all(dir, matcher, &entries)?;
    undated.sort_by(|a, b| a.name.cmp(&b.name));
    incomplete.sort_by(|a, b| a.name.cmp(&b.name));
    entries.extend(undated);
    entries.extend(incomplete);
    Ok(PrunePlan {
        dir: dir.to_owned(),
        entries,
    })
}

/// Refuse dated `entries` that are all removed. restic's rules always keep the newest
/// snapshot, so this only guards against a bug here turning a prune into `rm -rf`.
fn refuse_removing_all(dir: &Path, glob: &str, entries: &[PruneEntry]) -> Result<(), PruneError> {
    if !entries.is_empty() && entries.iter().all(|e| !e.keep) {
        return Err(PruneError::WouldRemoveAll {
            dir: dir.to_owned(),
            glob: glob.to_owned(),
            count: entries.len(),
        });
    }
    Ok(())
}

/// The matching direct entries of a directory, by what the plan can do with them.
#[derive(Default)]
struct Entries {
    /// Complete entries with a time: the candidates (`keep` and `reasons` not yet decided).
    dated: Vec<PruneEntry>,
    /// Complete entries without a readable time, kept.
    undated: Vec<PruneEntry>,
    /// Entries without the required file, left alone.
    incomplete: Vec<PruneEntry>,
}

/// The matching direct entries of `dir`, sorted into [`Entries`].
fn read_entries(
    dir: &Path,
    glob: &GlobMatcher,
    time_source: &TimeSource,
    require: Option<&Require>,
) -> Result<Entries, PruneError> {
    let read_error = |source| PruneError::ReadDir {
        dir: dir.to_owned(),
        source,
    };
    let mut entries = Entries::default();
    // `read_dir` yields only entries inside `dir`, never `dir`, `.` or `..`.
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let file_name = entry.map_err(read_error)?.file_name();
        if !glob.is_match(Path::new(&file_name)) {
            continue;
        }
        let path = dir.join(&file_name);
        let name = file_name.to_string_lossy().into_owned();
        let completeness = require.map_or(Completeness::Complete { companion: None }, |r| {
            r.check(dir, &name)
        });
        let time = entry_time(&path, &name, time_source);
        let mut entry = PruneEntry {
            path,
            name,
            time,
            keep: true,
            incomplete: false,
            reasons: Vec::new(),
            companion: None,
        };
        match (completeness, &entry.time) {
            (Completeness::Incomplete(why), _) => {
                entry.incomplete = true;
                entry.reasons = vec![format!("incomplete, left alone: {why}")];
                entries.incomplete.push(entry);
            }
            (Completeness::Complete { companion }, Ok(_)) => {
                entry.companion = companion;
                entries.dated.push(entry);
            }
            (Completeness::Complete { companion }, Err(why)) => {
                entry.reasons = vec![format!("time unreadable: {why}")];
                entry.companion = companion;
                entries.undated.push(entry);
            }
        }
    }
    Ok(entries)
}

/// The backup time of one entry, or why there is none.
fn entry_time(path: &Path, name: &str, source: &TimeSource) -> Result<NaiveDateTime, String> {
    match source {
        TimeSource::Mtime => {
            // `symlink_metadata`: a link's own time, never its target's.
            let modified = fs::symlink_metadata(path)
                .and_then(|m| m.modified())
                .map_err(|e| format!("cannot read the mtime: {e}"))?;
            Ok(DateTime::<Utc>::from(modified).naive_utc())
        }
        TimeSource::Name(pattern) => time_from_name(name, pattern),
    }
}

/// Parse `name` with `pattern`; a pattern with a date only gives midnight.
fn time_from_name(name: &str, pattern: &str) -> Result<NaiveDateTime, String> {
    let unparsed = |e| format!("name `{name}` does not match `{pattern}`: {e}");
    match NaiveDateTime::parse_from_str(name, pattern) {
        Ok(time) => Ok(time),
        Err(e) if e.kind() == ParseErrorKind::NotEnough => NaiveDate::parse_from_str(name, pattern)
            .map(|date| date.and_time(NaiveTime::MIN))
            .map_err(unparsed),
        Err(e) => Err(unparsed(e)),
    }
}

/// Remove the entries `plan` removes: a directory with `remove_dir_all` on that entry only,
/// anything else, symlinks included, with `remove_file`, so a link goes and its target stays.
///
/// Fails only if the directory itself is no longer readable; entries that cannot be removed
/// are reported in [`PruneOutcome::failed`] and the rest are still removed.
pub fn apply(plan: &PrunePlan) -> Result<PruneOutcome, PruneError> {
    fs::read_dir(&plan.dir).map_err(|source| PruneError::ReadDir {
        dir: plan.dir.clone(),
        source,
    })?;
    let mut outcome = PruneOutcome::default();
    for entry in plan.entries() {
        if entry.keep {
            outcome.kept.push(entry.path.clone());
            continue;
        }
        let removed = remove_entry(&entry.path).and_then(|()| match &entry.companion {
            Some(companion) => remove_companion(companion),
            None => Ok(()),
        });
        match removed {
            Ok(()) => outcome.removed.push(entry.path.clone()),
            Err(error) => outcome.failed.push(RemovalFailure {
                path: entry.path.clone(),
                error,
            }),
        }
    }
    Ok(outcome)
}

/// Remove the required file that lay next to a removed entry; already gone is fine (it may
/// have matched the glob and been removed as an entry of its own).
fn remove_companion(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Remove one entry without following a symlink (checked again now, not at planning time).
fn remove_entry(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        // std's `remove_dir_all` does not follow symlinks inside the tree either.
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;
