use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(rb::cli::run())
}
