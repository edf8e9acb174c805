//! `rb plan --check`: read-only probes of what a plan will need, run before anything is done.
//!
//! Probes, in this order:
//! - every engine a container step uses is reachable (its version is shown);
//! - every container a step names exists (its state is shown), except names that are runtime
//!   placeholders (`<…>`) and names an earlier `container.run` step creates;
//! - the image of every `container.run` is present on its engine (rb never pulls);
//! - the free space in the directory each output path (`stdout`/`stderr` file, `dest`, `to`,
//!   `write`) goes into (the nearest existing ancestor);
//! - every secret's source exists (the variable is set, the file is readable), never read out.
//!
//! Nothing is created, started or written.

use super::build::Plan;
use crate::exec::cx::{Engines, StepError};
use crate::runbook::model::Runbook;
use crate::steps::container::split_container_path;
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Less free space than this at an output's directory fails the probe.
pub const MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;

/// One probe's result.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// `engine`, `container`, `image`, `disk` or `secret`.
    pub kind: &'static str,
    /// What was probed (`default` or a host name; a container; an image; a directory).
    pub subject: String,
    pub ok: bool,
    /// What was found, or why the probe failed.
    pub detail: String,
}

/// What the plan's steps need, collected from their rendered configurations.
#[derive(Debug, Default)]
struct Needs {
    /// Engines in first-use order: `None` is the default engine.
    engines: Vec<Option<String>>,
    /// (engine, container, step id) for containers that must already exist.
    containers: Vec<(Option<String>, String, String)>,
    /// (engine, image) of `container.run` steps.
    images: Vec<(Option<String>, String)>,
    /// Directories that outputs go into.
    dirs: Vec<PathBuf>,
}

fn is_placeholder(s: &str) -> bool {
    s.contains('<') && s.contains('>')
}

#[expect(clippy::too_many_lines, reason = "one match arm per step type")]
fn collect(plan: &Plan, base: &Path) -> Needs {
    let mut needs = Needs::default();
    let mut created: BTreeSet<(Option<String>, String)> = BTreeSet::new();
    let mut seen_containers = BTreeSet::new();
    let resolve = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            base.join(p)
        }
    };
    for step in &plan.steps {
        let c = &step.config;
        let host = c.get("host").and_then(Json::as_str).map(str::to_owned);
        let mut named: Vec<String> = Vec::new();
        let mut outputs: Vec<String> = Vec::new();
        let s = |k: &str| c.get(k).and_then(Json::as_str).map(str::to_owned);
        let is_container_step = step.type_name.starts_with("container.")
            || step.type_name == "network.create"
            || (step.type_name == "health" && c.get("container").is_some_and(|v| !v.is_null()));
        match step.type_name.as_str() {
            "exec" | "container.exec" => {
                if let Some(n) = s("container") {
                    named.push(n);
                }
                for stream in ["stdout", "stderr"] {
                    if let Some(f) = c
                        .get(stream)
                        .and_then(|o| o.get("file"))
                        .and_then(Json::as_str)
                    {
                        outputs.push(f.to_owned());
                    }
                }
            }
            "container.copy" => {
                for (key, local_is_output) in [("from", false), ("to", true)] {
                    let Some(v) = s(key) else { continue };
                    match split_container_path(&v) {
                        Some((name, _)) => named.push(name.to_owned()),
                        None if local_is_output => outputs.push(v),
                        None => {}
                    }
                }
            }
            "container.start" | "container.stop" => {
                if let Some(list) = c.get("containers").and_then(Json::as_array) {
                    named.extend(list.iter().filter_map(Json::as_str).map(str::to_owned));
                }
            }
            "container.run" => {
                if let (Some(name), Some(image)) = (s("name"), s("image")) {
                    created.insert((host.clone(), name));
                    needs.images.push((host.clone(), image));
                }
            }
            "health" => {
                if let Some(n) = c
                    .get("container")
                    .and_then(|p| p.get("name"))
                    .and_then(Json::as_str)
                {
                    named.push(n.to_owned());
                }
            }
            _ => {
                for key in ["dest", "write"] {
                    if let Some(v) = s(key) {
                        outputs.push(v);
                    }
                }
            }
        }
        if is_container_step && !needs.engines.contains(&host) {
            needs.engines.push(host.clone());
        }
        for name in named {
            if is_placeholder(&name) || created.contains(&(host.clone(), name.clone())) {
                continue;
            }
            if seen_containers.insert((host.clone(), name.clone())) {
                needs.containers.push((host.clone(), name, step.id.clone()));
            }
        }
        for out in outputs {
            if is_placeholder(&out) {
                // The directory part may still be known: `/backups/<steps.x.outputs.y>.dump`.
                let dir = out.split('<').next().unwrap_or_default();
                if let Some(idx) = dir.rfind('/') {
                    let d = resolve(&dir[..=idx]);
                    if !needs.dirs.contains(&d) {
                        needs.dirs.push(d);
                    }
                }
                continue;
            }
            let path = resolve(&out);
            let dir = path.parent().map_or_else(|| path.clone(), Path::to_owned);
            if !needs.dirs.contains(&dir) {
                needs.dirs.push(dir);
            }
        }
    }
    needs
}

fn engine_label(host: Option<&str>) -> String {
    host.map_or_else(|| "default".to_owned(), str::to_owned)
}

fn step_error(e: StepError) -> String {
    match e {
        StepError::Failed(m) | StepError::GateRejected(m) => m,
        other => format!("{other:?}"),
    }
}

/// Run every probe the plan needs (read-only).
#[expect(clippy::too_many_lines, reason = "one block per probe kind")]
pub async fn run(runbook: &Runbook, plan: &Plan) -> Vec<Probe> {
    let base = runbook.base_dir();
    let needs = collect(plan, &base);
    let engines = Engines::new(runbook.hosts.clone(), base);
    let mut probes = Vec::new();
    // Engines that answered: containers and images are only probed on those.
    let mut up: BTreeMap<Option<String>, bool> = BTreeMap::new();
    for host in &needs.engines {
        let subject = engine_label(host.as_deref());
        let probe = match engines.get(host.as_deref()) {
            Err(e) => Probe {
                kind: "engine",
                subject,
                ok: false,
                detail: step_error(e),
            },
            Ok(engine) => match engine.version().await {
                Ok(v) => Probe {
                    kind: "engine",
                    subject,
                    ok: true,
                    detail: format!(
                        "{} reachable, Docker {} (API {}, {}/{})",
                        engine.endpoint(),
                        v.version,
                        v.api_version,
                        v.os,
                        v.arch
                    ),
                },
                Err(e) => Probe {
                    kind: "engine",
                    subject,
                    ok: false,
                    detail: e.to_string(),
                },
            },
        };
        up.insert(host.clone(), probe.ok);
        probes.push(probe);
    }
    for (host, name, step) in &needs.containers {
        if !up.get(host).copied().unwrap_or(false) {
            continue;
        }
        let Ok(engine) = engines.get(host.as_deref()) else {
            continue;
        };
        let subject = format!("{name} on {}", engine_label(host.as_deref()));
        probes.push(match engine.inspect_state(name).await {
            Ok(st) => Probe {
                kind: "container",
                subject,
                ok: true,
                detail: match (&st.health, st.exit_code) {
                    (Some(h), _) => format!("{} ({h})", st.status),
                    (None, Some(code)) => format!("{} (exit code {code})", st.status),
                    (None, None) => st.status.clone(),
                },
            },
            Err(e) => Probe {
                kind: "container",
                subject,
                ok: false,
                detail: format!("{e} (needed by step `{step}`)"),
            },
        });
    }
    let mut seen_images = BTreeSet::new();
    for (host, image) in &needs.images {
        if !seen_images.insert((host.clone(), image.clone()))
            || is_placeholder(image)
            || !up.get(host).copied().unwrap_or(false)
        {
            continue;
        }
        let Ok(engine) = engines.get(host.as_deref()) else {
            continue;
        };
        let subject = format!("{image} on {}", engine_label(host.as_deref()));
        probes.push(match engine.image_exists(image).await {
            Ok(true) => Probe {
                kind: "image",
                subject,
                ok: true,
                detail: "present".into(),
            },
            Ok(false) => Probe {
                kind: "image",
                subject,
                ok: false,
                detail: "missing (rb never pulls: load or build it there first)".into(),
            },
            Err(e) => Probe {
                kind: "image",
                subject,
                ok: false,
                detail: e.to_string(),
            },
        });
    }
    for dir in &needs.dirs {
        probes.push(disk_probe(dir));
    }
    probes.extend(secret_probes(runbook));
    probes.extend(crate::store::probe::all(runbook).await);
    probes
}

/// Each secret's source exists: the variable is set and not empty, or the file is there and
/// readable. The value is never read out (a file is only opened).
fn secret_probes(runbook: &Runbook) -> Vec<Probe> {
    let base = runbook.base_dir();
    runbook
        .secrets
        .iter()
        .map(|(name, spec)| {
            let (ok, detail) = match (&spec.env, &spec.file) {
                (Some(var), _) => match std::env::var_os(var) {
                    Some(v) if !v.is_empty() => (true, format!("from `${var}` (set)")),
                    Some(_) => (false, format!("`${var}` is empty")),
                    None => (false, format!("`${var}` is not set")),
                },
                (None, Some(file)) => {
                    let path = base.join(file);
                    match std::fs::File::open(&path) {
                        Ok(_) => (true, format!("from `{}` (readable)", path.display())),
                        Err(e) => (false, format!("`{}`: {e}", path.display())),
                    }
                }
                (None, None) => (false, "no source".to_owned()),
            };
            Probe {
                kind: "secret",
                subject: name.clone(),
                ok,
                detail,
            }
        })
        .collect()
}

/// Free space at `dir`, or at its nearest existing ancestor (outputs create their directory).
fn disk_probe(dir: &Path) -> Probe {
    let subject = dir.display().to_string();
    let mut at = dir.to_owned();
    while !at.exists() {
        match at.parent() {
            Some(p) => at = p.to_owned(),
            None => break,
        }
    }
    match nix::sys::statvfs::statvfs(&at) {
        Ok(st) => {
            let free = st.blocks_available() * st.fragment_size();
            let shown = if at == dir {
                format!("{} free", human(free))
            } else {
                format!(
                    "{} free at {} (does not exist yet)",
                    human(free),
                    at.display()
                )
            };
            Probe {
                kind: "disk",
                subject,
                ok: free >= MIN_FREE_BYTES,
                detail: if free >= MIN_FREE_BYTES {
                    shown
                } else {
                    format!("only {shown}")
                },
            }
        }
        Err(e) => Probe {
            kind: "disk",
            subject,
            ok: false,
            detail: format!("cannot stat `{}`: {e}", at.display()),
        },
    }
}

#[expect(clippy::cast_precision_loss, reason = "a human-readable size")]
fn human(bytes: u64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= GIB {
        format!("{:.1} GiB", b / GIB)
    } else {
        format!("{:.1} MiB", b / MIB)
    }
}

/// The probes as a text section (after the plan).
pub fn text(probes: &[Probe]) -> String {
    use std::fmt::Write as _;
    let failed = probes.iter().filter(|p| !p.ok).count();
    let mut out = String::from("\nChecks:\n");
    if probes.is_empty() {
        out.push_str("  (nothing to probe)\n");
    }
    for p in probes {
        let mark = if p.ok { "ok  " } else { "FAIL" };
        let _ = writeln!(out, "  {mark} {:<9} {}: {}", p.kind, p.subject, p.detail);
    }
    let _ = writeln!(
        out,
        "{} of {} checks passed",
        probes.len() - failed,
        probes.len()
    );
    out
}

/// The probes as a markdown section.
pub fn markdown(probes: &[Probe]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "\n## Checks\n\n| result | kind | subject | detail |\n| --- | --- | --- | --- |\n",
    );
    for p in probes {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            if p.ok { "ok" } else { "FAIL" },
            p.kind,
            p.subject.replace('|', "\\|"),
            p.detail.replace('|', "\\|").replace('\n', " ")
        );
    }
    out
}
