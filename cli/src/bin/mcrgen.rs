//! `mcrgen`: multicast/unicast UDP traffic generator for tests and benchmarks.
//! The payload format is documented in `mcr_traffic`.

use std::process::ExitCode;

use clap::Parser;
use mcr_cli::args::mcrgen::Cli;
use mcr_traffic::gen;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match gen::main(&cli.args) {
        // Every send failed: nothing was generated.
        Ok(s) if s.sent == 0 && s.errors > 0 => ExitCode::from(1),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcrgen: {e:#}");
            ExitCode::from(2)
        }
    }
}
