//! mcrctl: control a running mcrd over its Unix control socket.

use clap::{CommandFactory, Parser, Subcommand};
use mcr_cli::client::{Client, ConnectError};
use mcr_controlplane::control::api::Answer;
use mcr_controlplane::control::Request;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const EXIT_REFUSED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CONNECT: u8 = 3;

#[derive(Parser)]
#[command(name = "mcrctl", version, about = "Control a running mcrd")]
struct Cli {
    /// Control socket of the mcrd to talk to [default: /run/mcr/mcrd-NAME.sock
    /// inside the named namespace NAME, else /run/mcr/mcrd.sock].
    #[arg(long, visible_alias = "socket-path", env = "MCR_SOCKET", global = true)]
    socket: Option<PathBuf>,
    /// Print the daemon's answer as JSON (stable field names) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 10.0, global = true)]
    timeout: f64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show the daemon's state: version, uptime, rules, counters, namespace.
    Status,
    /// Check that the daemon answers.
    Ping,
    /// Show the daemon's version and protocol version.
    Version,
    /// List every rule with its id, origin and state.
    List,
    /// Add a rule at run time (validated like the config file).
    Add {
        #[arg(long)]
        input_interface: String,
        #[arg(long)]
        input_group: String,
        #[arg(long)]
        input_port: u16,
        /// Only take datagrams from this source (S,G).
        #[arg(long)]
        input_source: Option<String>,
        /// Comma-separated GROUP:PORT:INTERFACE[:TTL] outputs.
        #[arg(long, value_delimiter = ',', required = true)]
        outputs: Vec<String>,
        /// The rule's name (also its id).
        #[arg(long)]
        name: Option<String>,
        /// Same as --name: a named rule's id is its name.
        #[arg(long, conflicts_with = "name")]
        rule_id: Option<String>,
    },
    /// Remove a rule by id or name.
    Remove {
        #[arg(long, required_unless_present = "name")]
        rule_id: Option<String>,
        #[arg(long, conflicts_with = "rule_id")]
        name: Option<String>,
    },
    /// Per rule and per output counters, rates and drops.
    Stats {
        /// Refresh every SECS seconds (default 1) until interrupted.
        #[arg(long, num_args = 0..=1, default_missing_value = "1")]
        watch: Option<f64>,
    },
    /// Each data-plane engine with its CPU, interfaces, rate and drops.
    #[command(visible_alias = "workers")]
    Cores,
    /// Show, check or save the configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Get or set the daemon's log filter.
    #[command(subcommand)]
    LogLevel(LogCmd),
    /// Re-read the config file and apply the difference.
    Reload {
        /// Load this file instead of the one mcrd was started with.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Show what would change without applying it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stream events (rule state changes, interfaces, reloads, IGMP joins,
    /// leaves and querier changes; pim and msdp once those run) until
    /// interrupted.
    Subscribe {
        /// Comma-separated categories: rules, interfaces, reload, igmp, pim, msdp [default: all].
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
    },
    /// IGMP: groups learned, querier state, run-time enable/disable.
    #[command(subcommand)]
    Igmp(IgmpCmd),
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum IgmpCmd {
    /// Groups per interface: mode, sources, timers (seconds left), version, last reporter.
    Groups {
        /// Only this interface.
        #[arg(long)]
        interface: Option<String>,
    },
    /// Querier per interface (address, whether it is us), version, timers, counters.
    Interfaces,
    /// Run IGMP on an interface now (until the next reload; not saved).
    Enable {
        #[arg(long)]
        interface: String,
    },
    /// Stop IGMP on an interface now (until the next reload; not saved).
    Disable {
        #[arg(long)]
        interface: String,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// The running state as JSON5.
    Show,
    /// Validate a file (as the daemon would load it).
    Check { file: PathBuf },
    /// Write the running state to FILE (default: the daemon's config file), atomically.
    Save { file: Option<PathBuf> },
}

#[derive(Subcommand)]
enum LogCmd {
    Get,
    /// Set LEVEL (e.g. debug) for everything, or for one --target.
    Set {
        #[arg(long)]
        target: Option<String>,
        level: String,
    },
}

fn parse_output(spec: &str) -> Result<Value, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    if !(3..=4).contains(&parts.len()) {
        return Err(format!(
            "output '{spec}' must be GROUP:PORT:INTERFACE[:TTL], e.g. 239.1.1.2:5001:eth1"
        ));
    }
    let port: u16 = parts[1].parse().map_err(|_| {
        format!(
            "output '{spec}': port '{}' is not a number from 1 to 65535",
            parts[1]
        )
    })?;
    let mut v = json!({ "group": parts[0], "port": port, "interface": parts[2] });
    if let Some(ttl) = parts.get(3) {
        let ttl: u8 = ttl
            .parse()
            .map_err(|_| format!("output '{spec}': TTL '{ttl}' is not a number from 1 to 255"))?;
        v["ttl"] = json!(ttl);
    }
    Ok(v)
}

fn request_for(cmd: &Cmd) -> Result<Request, String> {
    Ok(match cmd {
        Cmd::Status => Request::Status,
        Cmd::Ping => Request::Ping,
        Cmd::Version => Request::Version,
        Cmd::List => Request::List,
        Cmd::Add {
            input_interface,
            input_group,
            input_port,
            input_source,
            outputs,
            name,
            rule_id,
        } => {
            let mut input =
                json!({"interface": input_interface, "group": input_group, "port": input_port});
            if let Some(s) = input_source {
                input["source"] = json!(s);
            }
            let outputs: Vec<Value> = outputs
                .iter()
                .map(|o| parse_output(o))
                .collect::<Result<_, _>>()?;
            let mut rule = json!({"input": input, "outputs": outputs});
            if let Some(n) = name.as_ref().or(rule_id.as_ref()) {
                rule["name"] = json!(n);
            }
            // The same deserializer as the daemon's and the config file's,
            // so an address is judged alike everywhere.
            let rule = serde_json::from_value(rule).map_err(|e| format!("rule: {e}"))?;
            Request::Add { rule }
        }
        Cmd::Remove { rule_id, name } => Request::Remove {
            rule_id: rule_id.clone(),
            name: name.clone(),
        },
        Cmd::Stats { .. } => Request::Stats,
        Cmd::Cores => Request::Cores,
        Cmd::Config(ConfigCmd::Show) => Request::ConfigShow,
        Cmd::Config(ConfigCmd::Check { file }) => Request::ConfigCheck {
            file: absolute(file),
        },
        Cmd::Config(ConfigCmd::Save { file }) => Request::ConfigSave {
            file: file.as_deref().map(absolute),
        },
        Cmd::LogLevel(LogCmd::Get) => Request::LogLevelGet,
        Cmd::LogLevel(LogCmd::Set { target, level }) => Request::LogLevelSet {
            level: level.clone(),
            target: target.clone(),
        },
        Cmd::Reload { file, dry_run } => Request::Reload {
            file: file.as_deref().map(absolute),
            dry_run: *dry_run,
        },
        Cmd::Subscribe { events } => Request::Subscribe {
            events: events.clone(),
        },
        Cmd::Igmp(IgmpCmd::Groups { interface }) => Request::IgmpGroups {
            interface: interface.clone(),
        },
        Cmd::Igmp(IgmpCmd::Interfaces) => Request::IgmpInterfaces,
        Cmd::Igmp(IgmpCmd::Enable { interface }) => Request::IgmpEnable {
            interface: interface.clone(),
        },
        Cmd::Igmp(IgmpCmd::Disable { interface }) => Request::IgmpDisable {
            interface: interface.clone(),
        },
        Cmd::Completions { .. } => return Err("completions are printed locally".into()),
    })
}

/// The daemon resolves paths in its own working directory; send absolute ones.
fn absolute(p: &std::path::Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Writes to stdout. When the reader went away (`mcrctl ... | head -1`),
/// exits quietly with success: what was asked for was delivered to
/// whoever still wanted it, and a panic message would be noise.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        error_line(&format!("cannot write the answer: {e}"));
        std::process::exit(i32::from(EXIT_CONNECT));
    }
}

/// Writes an `Error: ...` line to stderr, escaped for the terminal; a
/// closed stderr is ignored (eprintln! would panic).
fn error_line(msg: &str) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "Error: {}",
        mcr_cli::render::terminal_safe(msg)
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "mcrctl", &mut script);
        emit(&String::from_utf8_lossy(&script));
        return ExitCode::SUCCESS;
    }
    let req = match request_for(&cli.command) {
        Ok(r) => r,
        Err(e) => {
            error_line(&e);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let socket = match &cli.socket {
        Some(p) => mcr_controlplane::namespace::resolve_socket_path(p),
        None => mcr_controlplane::namespace::default_socket_path(),
    };
    let timeout = Duration::from_secs_f64(cli.timeout.max(0.1));
    let mut client = match Client::connect(&socket, timeout) {
        Ok(c) => c,
        Err(e) => return connect_failed(e),
    };
    if let Cmd::Subscribe { .. } = cli.command {
        let answer = match client.request(&req) {
            Ok(a) => a,
            Err(e) => return connect_failed(e),
        };
        if let Some(code) = show(&cli, &req, &answer) {
            return code;
        }
        loop {
            match client.next_event() {
                Ok(Some(event)) => {
                    if cli.json {
                        emit(&format!("{event}\n"));
                    } else {
                        emit(&format!("{}\n", mcr_cli::render::event_line(&event)));
                    }
                }
                Ok(None) => return ExitCode::SUCCESS,
                Err(e) => return connect_failed(e),
            }
        }
    }
    if let Cmd::Stats { watch: Some(secs) } = cli.command {
        let every = Duration::from_secs_f64(secs.max(0.2));
        loop {
            let answer = match client.request(&req) {
                Ok(a) => a,
                Err(e) => return connect_failed(e),
            };
            if !cli.json {
                emit("\x1b[2J\x1b[H");
            }
            if let Some(code) = show(&cli, &req, &answer) {
                return code;
            }
            std::thread::sleep(every);
        }
    }
    match client.request(&req) {
        Ok(answer) => show(&cli, &req, &answer).unwrap_or(ExitCode::SUCCESS),
        Err(e) => connect_failed(e),
    }
}

fn connect_failed(e: ConnectError) -> ExitCode {
    error_line(&e.to_string());
    ExitCode::from(EXIT_CONNECT)
}

/// Prints an answer; returns an exit code when the daemon refused.
fn show(cli: &Cli, req: &Request, answer: &Answer) -> Option<ExitCode> {
    if !answer.ok {
        if cli.json {
            emit(&format!(
                "{}\n",
                serde_json::to_string(answer).unwrap_or_default()
            ));
        }
        let msg = answer
            .error
            .as_ref()
            .map_or("request refused", |e| e.message.as_str());
        error_line(msg);
        return Some(ExitCode::from(EXIT_REFUSED));
    }
    let result = answer.result.clone().unwrap_or(Value::Null);
    if cli.json {
        emit(&format!("{result}\n"));
        return None;
    }
    match req.reply_kind().parse(result) {
        Ok(reply) => {
            emit(&mcr_cli::render::render(&reply));
            None
        }
        Err(e) => {
            error_line(&format!(
                "mcrd answered {} in a shape this mcrctl does not know ({e}); \
                 is it another version? Try --json",
                req.name()
            ));
            Some(ExitCode::from(EXIT_CONNECT))
        }
    }
}
