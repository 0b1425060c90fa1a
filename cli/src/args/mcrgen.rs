//! The command line of `mcrgen` (also read by the man page generator).

use clap::Parser;
use mcr_traffic::gen::GenArgs;

#[derive(Parser, Debug)]
#[command(
    name = "mcrgen",
    version,
    about = "UDP traffic generator for mcr tests and benchmarks"
)]
pub struct Cli {
    #[command(flatten)]
    pub args: GenArgs,
}
