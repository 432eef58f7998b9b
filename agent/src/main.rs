//! The `warden` binary: parse the command line and hand over to the library.
#![forbid(unsafe_code)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    warden::cli::run(warden::cli::Cli::parse())
}
