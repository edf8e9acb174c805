//! The journal: one JSON event per line in `STATE/runs/RUN_ID/journal.jsonl`, each line
//! written and fsynced before the executor goes on, and read back for `--resume`,
//! `rb history` and `rb report`. [`basis`] finds what a run starts from.

pub mod basis;

use crate::event::{EventKind, Outcome, RunEvent};
use crate::exec::executor::{Done, Resume};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Open (create or append to) the journal of a run directory.
    pub fn open(run_dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(run_dir)?;
        let path = run_dir.join("journal.jsonl");
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)?;
        // A torn last line (a crash mid-write) is ended, so the next event is a line of its
        // own and not glued to the torn one.
        if ends_torn(&mut file)? {
            file.write_all(b"\n")?;
        }
        Ok(Self { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one event: written to the file at once, and synced to disk for the events
    /// resume depends on (a run started, a step finished, a gate answered, the run
    /// finished). A `StepStarted` lost in a crash changes nothing: a step without its
    /// `StepFinished` is re-run anyway, so syncing it would only double the cost per step.
    pub fn append(&mut self, event: &RunEvent) -> io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        if matches!(
            event.kind,
            EventKind::RunStarted { .. }
                | EventKind::StepFinished { .. }
                | EventKind::GateAnswered { .. }
                | EventKind::RunFinished { .. }
        ) {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// Whether a file's last byte is something other than a line end.
fn ends_torn(file: &mut File) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// A journal read back: the events that could be read, and what could not.
#[derive(Debug, Clone, Default)]
pub struct Contents {
    pub events: Vec<RunEvent>,
    /// One message per unreadable line (`line 7: …`), in file order.
    pub damage: Vec<String>,
}

/// Read a journal as far as it can be read: a line that is not an event (garbage, an event
/// this version does not know, invalid UTF-8, a torn last line) is skipped and named in
/// `damage`, so one bad line never hides the rest of the run. A torn last line (the process
/// died mid-write) is expected and not counted as damage.
pub fn read(path: &Path) -> io::Result<Contents> {
    Ok(parse(&std::fs::read(path)?))
}

/// The events of a journal's bytes (see [`read`]).
pub fn parse(bytes: &[u8]) -> Contents {
    let mut contents = Contents::default();
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let torn_tail = bytes.last().is_some_and(|&b| b != b'\n');
    if !torn_tail {
        lines.pop();
    }
    let last = lines.len();
    for (n, line) in lines.into_iter().enumerate() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<RunEvent>(line) {
            Ok(e) => contents.events.push(e),
            Err(_) if torn_tail && n + 1 == last => {}
            Err(e) => contents.damage.push(format!("line {}: {e}", n + 1)),
        }
    }
    contents
}

/// What a journal says about a run.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub run_id: String,
    pub runbook: String,
    pub dir: PathBuf,
    pub events: Vec<RunEvent>,
    /// Lines of the journal that could not be read (see [`read`]).
    pub damage: Vec<String>,
}

impl RunRecord {
    /// The run's start event.
    pub fn started(&self) -> Option<&RunEvent> {
        self.events
            .iter()
            .find(|e| matches!(e.kind, EventKind::RunStarted { .. }))
    }

    /// The newest attempt's start event (a resumed run has several).
    pub fn last_started(&self) -> Option<&RunEvent> {
        self.events
            .iter()
            .rev()
            .find(|e| matches!(e.kind, EventKind::RunStarted { .. }))
    }

    /// The last `RunFinished` (a resumed run has several).
    pub fn finished(&self) -> Option<&RunEvent> {
        self.events
            .iter()
            .rev()
            .find(|e| matches!(e.kind, EventKind::RunFinished { .. }))
    }

    /// Whether the last attempt of the run ended in success.
    pub fn succeeded(&self) -> bool {
        matches!(
            self.finished().map(|e| &e.kind),
            Some(EventKind::RunFinished {
                outcome: crate::event::RunOutcome::Succeeded,
                ..
            })
        )
    }

    /// What the run's attempts left for the next one: each step whose latest finish is a
    /// success (with its outputs and where the work was done), and where each step last ran.
    pub fn earlier(&self) -> Resume {
        let mut out = Resume::default();
        for (seq, e) in self.events.iter().enumerate() {
            let EventKind::StepFinished {
                step,
                outcome,
                attempts,
                fingerprint,
                outputs,
                reused,
                ..
            } = &e.kind
            else {
                continue;
            };
            if *reused && out.done.contains_key(step) {
                // Restored, not done again: the work (and its position) is the earlier one.
                continue;
            }
            if *attempts > 0 {
                out.last_ran.insert(step.clone(), seq);
            }
            if *outcome == Outcome::Succeeded {
                out.done.insert(
                    step.clone(),
                    Done {
                        fingerprint: fingerprint.clone(),
                        outputs: outputs.clone(),
                        seq,
                    },
                );
            } else {
                out.done.remove(step);
            }
        }
        out
    }

    /// The run this one derives from (`--from`/`--only` after it finished), if any.
    pub fn derived_from(&self) -> Option<&str> {
        match &self.started()?.kind {
            EventKind::RunStarted { derived_from, .. } => derived_from.as_deref(),
            _ => None,
        }
    }
}

/// Every run in a state directory, oldest first by the time it started (optionally of one
/// runbook). Not by directory name: two runs started in the same second have ids that differ
/// only in a random suffix.
pub fn runs(state: &Path, runbook: Option<&str>) -> io::Result<Vec<RunRecord>> {
    let dir = state.join("runs");
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    let mut names: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    names.sort();
    for run_dir in names {
        let path = run_dir.join("journal.jsonl");
        let Ok(Contents { events, damage }) = read(&path) else {
            continue;
        };
        let Some(EventKind::RunStarted {
            run_id,
            runbook: name,
            ..
        }) = events.first().map(|e| &e.kind)
        else {
            continue;
        };
        if runbook.is_some_and(|r| r != name) {
            continue;
        }
        // Said on stderr by every command that reads the run: it is still listed, reported
        // and resumable from what could be read.
        for d in &damage {
            eprintln!("warning: `{}`: {d}; the line is skipped", path.display());
        }
        out.push(RunRecord {
            run_id: run_id.clone(),
            runbook: name.clone(),
            dir: run_dir.clone(),
            events,
            damage,
        });
    }
    out.sort_by(|a, b| (a.events[0].at, &a.run_id).cmp(&(b.events[0].at, &b.run_id)));
    Ok(out)
}
