//! The command line: one file per subcommand; this module parses and dispatches.

/// `print!` to stdout that stops quietly when the reader has gone (`rb plan … | head`): a
/// closed pipe is not an error of rb's, and must not become a panic (exit 101).
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::write_out(format_args!($($t)*)) };
}

/// `println!` to stdout, as [`out!`].
macro_rules! outln {
    ($($t:tt)*) => { $crate::cli::write_out(format_args!("{}\n", format_args!($($t)*))) };
}

mod completions;
pub mod diagnostics;
mod graph;
mod history;
mod interrupt;
mod man;
mod plan;
mod report;
mod run;
mod schema;
mod status;
mod validate;

pub use diagnostics::{Prepared, prepare, print_diagnostics};

use crate::exit_code;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Write to stdout; a reader that closed the pipe ends the output, another error is said.
pub(crate) fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write the output: {e}");
    }
}

/// Declarative runbooks for backup, restore, PITR and disaster recovery.
#[derive(Debug, Parser)]
#[command(name = "rb", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Param values given on the command line.
#[derive(Debug, Clone, clap::Args, Default)]
pub struct ParamArgs {
    /// Set a param: `-p name=value` (repeatable; later wins).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Read params from a YAML or JSON mapping (before `-p` values).
    #[arg(long = "params-file", value_name = "FILE")]
    pub params_files: Vec<PathBuf>,
    /// Plan as if the run started at this time (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check runbooks and print every problem; exit 2 on any error.
    Validate(validate::Args),
    /// Show what a run would do: rendered steps, parallel groups, critical path, RTO budget.
    Plan(plan::Args),
    /// Run a runbook (or resume one): steps in parallel, journaled, with a timed report.
    Run(run::Args),
    /// Print the step graph as Graphviz DOT or Mermaid, the critical path highlighted.
    Graph(graph::Args),
    /// Print the JSON Schema of the runbook format (or of the JSON plan).
    Schema(schema::Args),
    /// Render a past run's report: text, Markdown, JSON, `JUnit` XML, HTML or Prometheus.
    Report(report::Args),
    /// List past runs, oldest first: duration, result, RTO verdict and trend.
    History(history::Args),
    /// Check each runbook's RPO against its newest successful run; exit 1 when violated.
    Status(status::Args),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Print the manual page rb(1) in roff, or write one page per command into a directory.
    Man(man::Args),
}

/// Parse the command line, run the command, and return the exit code.
pub fn run() -> u8 {
    install_miette_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit_code::INVALID
            } else {
                exit_code::OK
            };
        }
    };
    match cli.command {
        Command::Validate(a) => validate::run(&a),
        Command::Plan(a) => plan::run(&a),
        Command::Run(a) => run::run(&a),
        Command::Graph(a) => graph::run(&a),
        Command::Schema(a) => schema::run(&a),
        Command::Report(a) => report::run(&a),
        Command::History(a) => history::run(&a),
        Command::Status(a) => status::run(&a),
        Command::Completions(a) => completions::run(&a),
        Command::Man(a) => man::run(&a),
    }
}

fn install_miette_hook() {
    let color = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(color)
                .terminal_links(false)
                .width(100)
                .build(),
        )
    }));
}
