//! `sluice-cpu --size BYTES --iterations N`: validates and seals one `BYTES`-byte event `N` times
//! and prints a JSON report; run under `valgrind --tool=callgrind` to count its instructions.

use mimalloc::MiMalloc;

// The allocator `sluice serve` and the Lambda functions use, so the counts are theirs.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut size = 1024usize;
    let mut iterations = 1000u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| anyhow::anyhow!("{arg} needs a value"))?;
        match arg.as_str() {
            "--size" => size = value.parse()?,
            "--iterations" => iterations = value.parse()?,
            _ => anyhow::bail!("usage: sluice-cpu [--size BYTES] [--iterations N]"),
        }
    }
    println!("{}", sluice_cpu::run(size, iterations)?);
    Ok(())
}
