//! Applying a retention policy to the entries of a backup directory.
//!
//! Planning only reads; [`apply`] only removes what a plan lists. The rules exist because of
//! the manual's `find /backups -mtime +30 -exec rm -rf {} \;`, which matched and deleted the
//! backup root itself: only direct entries of the directory that match the glob are
//! candidates, symlinks are removed and never followed, entries with no readable time are
//! kept, and a plan that would leave no dated backup is refused.

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

use super::{KeepCounts, KeepWithin, Snapshot, decide_at, policy_is_empty};

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
    /// Whether the entry is kept.
    pub keep: bool,
    /// Why it is kept, in restic's words (`daily snapshot`, `within 30d`…), or
    /// `time unreadable: …` for an entry without a time; empty when removed.
    pub reasons: Vec<String>,
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

    /// Every matching entry: dated ones newest first, then undated ones by name.
    pub fn entries(&self) -> &[PruneEntry] {
        &self.entries
    }

    /// The entries the plan keeps, including those without a readable time.
    pub fn kept(&self) -> impl Iterator<Item = &PruneEntry> {
        self.entries.iter().filter(|e| e.keep)
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
/// every dated entry. Entries whose time cannot be read are kept and listed with the reason.
pub fn plan_prune(
    dir: &Path,
    matcher: &str,
    time_source: &TimeSource,
    keep: &KeepCounts,
    within: &KeepWithin,
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
    let (dated, mut undated) = read_entries(dir, &glob, time_source)?;

    let snapshots: Vec<Snapshot> = dated
        .iter()
        .enumerate()
        .map(|(i, (_, _, time))| Snapshot {
            id: i.to_string(),
            time: *time,
        })
        .collect();
    // Windows ignore future-dated entries when finding the newest, as restic does.
    let decisions = decide_at(&snapshots, keep, within, Utc::now().naive_utc());
    let mut entries = Vec::with_capacity(dated.len() + undated.len());
    for decision in decisions {
        let index: usize = decision.id.parse().unwrap_or_default();
        let (path, name, time) = &dated[index];
        entries.push(PruneEntry {
            path: path.clone(),
            name: name.clone(),
            time: Ok(*time),
            keep: decision.keep,
            reasons: decision.reasons,
        });
    }

    refuse_removing_all(dir, matcher, &entries)?;
    undated.sort_by(|a, b| a.name.cmp(&b.name));
    entries.extend(undated);
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

/// A dated entry: path, name, time.
type Dated = (PathBuf, String, NaiveDateTime);

/// The matching direct entries of `dir`, split into dated ones and kept undated ones.
fn read_entries(
    dir: &Path,
    glob: &GlobMatcher,
    time_source: &TimeSource,
) -> Result<(Vec<Dated>, Vec<PruneEntry>), PruneError> {
    let read_error = |source| PruneError::ReadDir {
        dir: dir.to_owned(),
        source,
    };
    let (mut dated, mut undated) = (Vec::new(), Vec::new());
    // `read_dir` yields only entries inside `dir`, never `dir`, `.` or `..`.
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let file_name = entry.map_err(read_error)?.file_name();
        if !glob.is_match(Path::new(&file_name)) {
            continue;
        }
        let path = dir.join(&file_name);
        let name = file_name.to_string_lossy().into_owned();
        match entry_time(&path, &name, time_source) {
            Ok(time) => dated.push((path, name, time)),
            Err(why) => undated.push(PruneEntry {
                path,
                name,
                reasons: vec![format!("time unreadable: {why}")],
                time: Err(why),
                keep: true,
            }),
        }
    }
    Ok((dated, undated))
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
        match remove_entry(&entry.path) {
            Ok(()) => outcome.removed.push(entry.path.clone()),
            Err(error) => outcome.failed.push(RemovalFailure {
                path: entry.path.clone(),
                error,
            }),
        }
    }
    Ok(outcome)
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
