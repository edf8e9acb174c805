//! `rb plan --check`: read-only probes of what a plan will need, run before anything is done.
//!
//! Probes, in this order:
//! - every engine a container step uses is reachable (its version is shown);
//! - every container a step names exists (its state is shown), except names that are runtime
//!   placeholders (`<…>`) and names an earlier `container.run` step creates;
//! - the image of every `container.run` is present on its engine, or says it would be pulled
//!   (`pull: missing`, the default, or `always`; a missing one with `pull: never` fails);
//! - the free space in the directory each path a step writes (its [`crate::steps::Touches`]) goes into (the
//!   nearest existing ancestor);
//! - every secret's source exists (the variable is set, the file is readable), never read out.
//!
//! Nothing is created, started or written.

use super::build::Plan;
use crate::runbook::model::Runbook;
use crate::steps::cx::{Engines, StepError};
use serde::Serialize;
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
    /// Their `pull` (`missing`, `always`, `never`).
    pull: BTreeMap<(Option<String>, String), &'static str>,
    /// Directories that outputs go into.
    dirs: Vec<PathBuf>,
}

fn is_placeholder(s: &str) -> bool {
    s.contains('<') && s.contains('>')
}

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
        let touches = step.kind.touches();
        let host = touches.host;
        for name in touches.creates {
            created.insert((host.clone(), name));
        }
        for image in touches.images {
            needs
                .pull
                .insert((host.clone(), image.clone()), touches.pull);
            needs.images.push((host.clone(), image));
        }
        let (named, outputs) = (touches.containers, touches.writes);
        if touches.engine && !needs.engines.contains(&host) {
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
    let engines = Engines::new(plan.host_specs.clone(), base);
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
        let pull = needs
            .pull
            .get(&(host.clone(), image.clone()))
            .copied()
            .unwrap_or("never");
        probes.push(match engine.image_exists(image).await {
            Ok(present) => {
                let (ok, detail) = match (present, pull) {
                    (true, "always") => (true, "present; would be pulled again (`pull: always`)"),
                    (true, _) => (true, "present"),
                    (false, "missing" | "always") => (true, "missing: would be pulled"),
                    (false, _) => (
                        false,
                        "missing (`pull: never`: load or build it there first)",
                    ),
                };
                Probe {
                    kind: "image",
                    subject,
                    ok,
                    detail: detail.into(),
                }
            }
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
    probes.extend(
        crate::steps::store::probe::all(
            &plan.store_specs,
            // Credentials are needed to ask; missing secrets are reported by the secret probes.
            &crate::exec::secrets::read(runbook).unwrap_or_default(),
        )
        .await
        .into_iter()
        .map(|(subject, ok, detail)| Probe {
            kind: "store",
            subject,
            ok,
            detail,
        }),
    );
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

#[cfg(test)]
mod tests {
    use super::collect;
    use crate::runbook::params::Overrides;
    use crate::template::Mode;
    use std::path::{Path, PathBuf};

    /// What each step type touches comes from its typed configuration: engines, containers
    /// (not those an earlier step creates, nor placeholders), images and the directories of
    /// every path a step writes, whatever its key.
    #[test]
    fn the_probes_come_from_what_each_step_touches() {
        let text = "version: 1\nname: t\nhosts:\n  other: { docker: 'tcp://h:2376' }\nsteps:\n\
            - { id: run, type: container.run, name: web, image: 'nginx:1', host: other }\n\
            - { id: start, type: container.start, containers: [web, db], host: other }\n\
            - { id: in, type: container.exec, container: db, command: [x], stdout: { file: out/a.txt } }\n\
            - { id: copy, type: container.copy, from: 'db:/x', to: copies/x }\n\
            - { id: sum, type: checksum, files: [a], write: sums/SHA256SUMS }\n\
            - { id: pack, type: archive, sources: [a], dest: '/abs/packs/<steps.x.outputs.y>.tar' }\n\
            - { id: probe, type: health, container: { name: '<steps.run.outputs.id>' }, timeout: 1s }\n\
            - { id: wait, type: sleep, duration: 1s }\n";
        let loaded = crate::runbook::load::load_str(Path::new("/base/rb.yaml"), text.into());
        let mut diags = loaded.diagnostics;
        let mut runbook = loaded.runbook.expect("loads");
        let mut dag = crate::runbook::validate::validate(&runbook, &mut diags);
        assert!(
            diags.is_empty(),
            "{:?}",
            diags.iter().map(|d| &d.message).collect::<Vec<_>>()
        );
        let (_, plan) = crate::plan::build::resolve_and_build(
            &mut runbook,
            &mut dag,
            &Overrides::default(),
            chrono::Utc::now(),
            Mode::Plan,
            "run",
            std::collections::BTreeMap::new(),
        )
        .expect("plans");
        let needs = collect(&plan, Path::new("/base"));
        let other = Some("other".to_owned());
        assert_eq!(needs.engines, [other.clone(), None]);
        assert_eq!(
            needs.containers,
            [
                (other.clone(), "db".into(), "start".into()),
                (None, "db".into(), "in".into()),
            ]
        );
        assert_eq!(needs.images, [(other, "nginx:1".into())]);
        let dirs: Vec<PathBuf> = ["/base/out", "/base/copies", "/base/sums", "/abs/packs/"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(needs.dirs, dirs);
    }
}
