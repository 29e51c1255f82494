//! The `sluice` binary: parse the command line and hand over to the library.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    sluice::cli::main(sluice::cli::Cli::parse())
}
