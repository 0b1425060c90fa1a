//! mcrd: the multicast relay daemon.

use clap::Parser;
use mcr_cli::args::mcrd::{Cli, Command, LogFormat};
use mcr_controlplane::{Options, Signals, Supervisor};
use std::process::ExitCode;

/// Exit status when another mcrd already serves the control socket path.
const EXIT_SOCKET_IN_USE: u8 = 4;

type FilterHandle =
    tracing_subscriber::reload::Handle<tracing_subscriber::EnvFilter, tracing_subscriber::Registry>;

/// Sets up logging to stderr, one line per event; returns the handle that
/// changes the filter at run time.
fn init_logging(level: Option<&str>, format: LogFormat) -> (FilterHandle, String) {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let spec = level
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".into());
    let (filter, spec) = match EnvFilter::try_new(&spec) {
        Ok(f) => (f, spec),
        Err(e) => {
            eprintln!("warning: log filter '{spec}' is invalid ({e}); using info");
            (EnvFilter::new("info"), "info".into())
        }
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer().with_ansi(false);
    match format {
        // Text lines are escaped on the way out: interface names and other
        // text from the kernel or the wire may hold ESC or bidi overrides.
        LogFormat::Text => tracing_subscriber::registry()
            .with(filter)
            .with(fmt.with_writer(mcr_cli::logwriter::EscapingStderr))
            .init(),
        // JSON escapes control characters itself.
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(fmt.with_writer(std::io::stderr).json().flatten_event(true))
            .init(),
    }
    (handle, spec)
}

/// `mcrctl log-level` reaches the filter through this.
struct Logs {
    handle: FilterHandle,
    spec: std::sync::Mutex<String>,
}

impl mcr_controlplane::LogControl for Logs {
    fn current(&self) -> String {
        self.spec.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set(&self, filter: &str) -> Result<(), String> {
        let f = tracing_subscriber::EnvFilter::try_new(filter)
            .map_err(|e| format!("invalid log filter '{filter}': {e}"))?;
        self.handle.reload(f).map_err(|e| e.to_string())?;
        if let Ok(mut s) = self.spec.lock() {
            *s = filter.to_string();
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (log_handle, log_spec) = init_logging(cli.log_level.as_deref(), cli.log_format);
    match cli.command {
        Command::Listen(args) => match mcr_traffic::listen::main(&args) {
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
            control_socket_group,
            user,
            save_dir,
            metrics_listen,
        } => {
            // Read once: the hash `status` shows is of the bytes applied.
            let (cfg, config_hash) = match &config {
                Some(path) => match mcr_config::load_file_hashed(path) {
                    Ok((c, h)) => (c, Some(h)),
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                },
                None => (mcr_config::Config::default(), None),
            };
            let signals = match Signals::install() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("Error: cannot install signal handlers: {e}");
                    return ExitCode::FAILURE;
                }
            };
            // Absolute, so reloads find it whatever the working directory.
            let config = config.map(|p| std::path::absolute(&p).unwrap_or(p));
            let options = Options {
                config_path: config,
                control_socket_path: match control_socket_path {
                    Some(p) => {
                        let resolved = mcr_controlplane::namespace::resolve_socket_path(&p);
                        if resolved != p {
                            tracing::info!(
                                "control socket {} is served at {} ({} is the namespace itself, not a directory)",
                                p.display(),
                                resolved.display(),
                                p.parent().map(|d| d.display().to_string()).unwrap_or_default()
                            );
                        }
                        resolved
                    }
                    None => mcr_controlplane::namespace::default_socket_path(),
                },
                control_socket_group,
                user,
                config_hash,
                // Absolute, as clients send absolute paths to compare with.
                save_dir: save_dir.map(|p| std::path::absolute(&p).unwrap_or(p)),
                log_control: Some(Box::new(Logs {
                    handle: log_handle,
                    spec: std::sync::Mutex::new(log_spec),
                })),
                metrics_listen,
            };
            let result = Supervisor::start(options, cfg).and_then(|s| s.run(&signals));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // In text mode the log is stderr too: one line is enough.
                    // A JSON log is read by collectors, so it gets the
                    // error as a record as well.
                    if matches!(cli.log_format, LogFormat::Json) {
                        tracing::error!("{e:#}");
                    }
                    eprintln!("Error: {e:#}");
                    match e.downcast_ref::<mcr_controlplane::control::server::BindError>() {
                        Some(mcr_controlplane::control::server::BindError::InUse(_)) => {
                            ExitCode::from(EXIT_SOCKET_IN_USE)
                        }
                        _ => ExitCode::FAILURE,
                    }
                }
            }
        }
    }
}
