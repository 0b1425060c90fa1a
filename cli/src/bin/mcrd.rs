//! mcrd: the multicast relay daemon.

use clap::{Parser, Subcommand, ValueEnum};
use mcr_controlplane::{Options, Signals, Supervisor};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "mcrd", version, about = "Multicast relay daemon")]
struct Cli {
    /// Log level or filter (e.g. info, debug, mcr_dataplane=trace); overrides RUST_LOG.
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay.
    Supervisor {
        /// JSON5 config file (the desired state). Without it mcrd starts with no rules.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Unix control socket for mcrctl.
        #[arg(long, default_value = "/run/mcr/mcrd.sock")]
        control_socket_path: PathBuf,
    },
    /// Join a group and count what arrives (a diagnostic receiver; see docs).
    Listen(mcr_cli::traffic::ListenArgs),
    /// Validate a config file without starting (exit 0 when valid, 2 when not).
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
}

fn init_logging(level: Option<&str>, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).unwrap_or_else(|_| EnvFilter::new("info")),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref(), cli.log_format);
    match cli.command {
        Command::Listen(args) => match mcr_cli::traffic::listen::main(&args) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e:#}");
                ExitCode::from(1)
            }
        },
        Command::CheckConfig { file } => match mcr_config::load_file(&file) {
            Ok(c) => {
                println!(
                    "{}: valid ({} rule{})",
                    file.display(),
                    c.rules.len(),
                    if c.rules.len() == 1 { "" } else { "s" }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Supervisor {
            config,
            control_socket_path,
        } => {
            let cfg = match &config {
                Some(path) => match mcr_config::load_file(path) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                },
                None => mcr_config::Config::default(),
            };
            let signals = match Signals::install() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("Error: cannot install signal handlers: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let options = Options {
                config_path: config,
                control_socket_path,
            };
            let result = Supervisor::start(options, cfg).and_then(|s| s.run(&signals));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("Error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
