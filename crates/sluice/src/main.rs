//! The `sluice` binary: parse the command line and hand over to the library.

use clap::Parser as _;

/// mimalloc instead of glibc's malloc: the request path allocates a few dozen small objects per
/// event on whichever worker thread polls it, and glibc's per-arena locking and fastbin
/// consolidation cost a quarter of the server's CPU under load (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sluice::cli::main(sluice::cli::Cli::parse())
}
