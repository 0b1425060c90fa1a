//! The command line of `mcrd` (also read by the man page generator).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "mcrd", version, about = "Multicast relay daemon")]
pub struct Cli {
    /// Log level or filter (e.g. info, debug, mcr_dataplane=trace); overrides RUST_LOG.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the relay.
    Supervisor {
        /// JSON5 config file (the desired state). Without it mcrd starts with no rules.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Unix control socket for mcrctl [default: /run/mcr/mcrd-NAME.sock inside
        /// the named namespace NAME, else /run/mcr/mcrd.sock].
        #[arg(long)]
        control_socket_path: Option<PathBuf>,
        /// Group that owns the control socket (mode 0660), e.g. mcr.
        #[arg(long)]
        control_socket_group: Option<String>,
        /// Switch to this user once privileged resources are open, keeping
        /// only CAP_NET_RAW [default: mcr when it exists and mcrd runs as root].
        #[arg(long)]
        user: Option<String>,
        /// The one directory, besides the --config file, where control
        /// clients may have files saved, reloaded or checked; it must not
        /// be writable by group or others.
        #[arg(long, value_name = "DIR")]
        save_dir: Option<PathBuf>,
        /// Serve Prometheus/OpenMetrics metrics at http://ADDR/metrics
        /// (e.g. 127.0.0.1:9469) [default: metrics.listen from the config, else off].
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Join a group and count what arrives (a diagnostic receiver; see docs).
    Listen(mcr_traffic::ListenArgs),
    /// Validate a config file without starting (exit 0 when valid, 2 when not).
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}
