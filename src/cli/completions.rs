//! `rb completions SHELL`: the shell's completion script, generated from the same clap
//! definitions that parse the command line (so it never lists a flag rb does not take).

use crate::exit_code;
use clap::CommandFactory as _;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(args: &Args) -> u8 {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut super::Cli::command(), "rb", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    exit_code::OK
}
