//! `rb man`: the manual page rb(1) in roff, generated from the clap definitions; with `--dir`,
//! rb(1) and one page per command (rb-run(1), …) written there, as a package installs them.

use crate::exit_code;
use clap::CommandFactory as _;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write rb.1 and rb-COMMAND.1 for every command into DIR (created if missing, e.g.
    /// `/usr/share/man/man1`) instead of printing rb.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> u8 {
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let Some(dir) = &args.dir else {
        out!("{}", root_page(&cmd));
        return exit_code::OK;
    };
    let mut pages = vec![("rb.1".to_owned(), root_page(&cmd))];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let man = Man::new(sub.clone());
        let mut page = Vec::new();
        man.render(&mut page).expect("rendering to memory");
        pages.push((man.get_filename(), ascii(&page)));
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("error: cannot create `{}`: {e}", dir.display());
        return exit_code::STEP_FAILED;
    }
    for (name, page) in &pages {
        if let Err(e) = write(&dir.join(name), page.as_bytes()) {
            eprintln!("error: cannot write `{}`: {e}", dir.join(name).display());
            return exit_code::STEP_FAILED;
        }
    }
    exit_code::OK
}

/// rb(1): clap's sections, then the exit status (the codes of `exit_code`).
fn root_page(cmd: &clap::Command) -> String {
    let man = Man::new(cmd.clone());
    let mut page = Vec::new();
    let render = |page: &mut Vec<u8>| -> std::io::Result<()> {
        man.render_title(page)?;
        man.render_name_section(page)?;
        man.render_synopsis_section(page)?;
        man.render_description_section(page)?;
        man.render_options_section(page)?;
        man.render_subcommands_section(page)?;
        exit_status(page)?;
        man.render_version_section(page)
    };
    render(&mut page).expect("rendering to memory");
    ascii(&page)
}

/// Roff is ASCII: every other character (the help texts' `—`, `…`) as groff's and mandoc's
/// `\[uXXXX]` escape, so the page renders the same whatever the locale and `preconv`.
fn ascii(page: &[u8]) -> String {
    let mut out = String::with_capacity(page.len());
    for c in String::from_utf8_lossy(page).chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let _ = write!(out, "\\[u{:04X}]", u32::from(c));
        }
    }
    out
}

fn exit_status(w: &mut dyn std::io::Write) -> std::io::Result<()> {
    use crate::exit_code as c;
    let codes = [
        (c::OK, "succeeded"),
        (
            c::STEP_FAILED,
            "a step failed, or another run holds a lock; rb status: an RPO is violated",
        ),
        (c::INVALID, "invalid runbook or usage"),
        (
            c::GATE_NOT_APPROVED,
            "a gate was not approved (rb run prints the command that approves and resumes)",
        ),
        (
            c::OVER_RTO,
            "succeeded but over the RTO (only with --fail-over-rto)",
        ),
        (
            c::NO_RUNS,
            "rb status has nothing to judge: no state directory, or the runbook never ran there",
        ),
        (c::INTERRUPTED, "interrupted (SIGINT, SIGTERM, SIGHUP)"),
    ];
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (code, what) in codes {
        roff.control("TP", []);
        roff.text([bold(code.to_string())]);
        roff.text([roman(what)]);
    }
    roff.to_writer(w)
}

/// Written whole under its final name, or not at all.
fn write(path: &Path, bytes: &[u8]) -> Result<(), crate::io::error::Error> {
    use std::io::Write as _;
    let mut f = crate::io::atomic::AtomicFile::create(path)?;
    f.write_all(bytes)
        .map_err(|e| crate::io::error::Error::io("write", path, e))?;
    f.commit().map(drop)
}

#[cfg(test)]
mod tests {
    #[test]
    fn characters_beyond_ascii_are_roff_escapes() {
        assert_eq!(
            super::ascii("rb \u{2014} runs\u{2026} caf\u{e9}".as_bytes()),
            "rb \\[u2014] runs\\[u2026] caf\\[u00E9]"
        );
    }
}
