//! The `reeld` binary: parse arguments, run the command, exit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    reeld::cli::run(reeld::cli::Cli::parse())
}
