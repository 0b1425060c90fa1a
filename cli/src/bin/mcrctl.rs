//! mcrctl: control a running mcrd over its Unix control socket.

use clap::{CommandFactory, Parser};
use mcr_cli::args::mcrctl::{Cli, Cmd, ConfigCmd, IgmpCmd, LogCmd, MsdpCmd, PimCmd};
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
        Cmd::Remove { id, rule_id, name } => Request::Remove {
            rule_id: rule_id.clone().or_else(|| id.clone()),
            name: name.clone(),
        },
        Cmd::Stats { .. } => Request::Stats,
        Cmd::Cores => Request::Cores,
        Cmd::Mroute => Request::Mroute,
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
        Cmd::Pim(p) => match p {
            PimCmd::Neighbors => Request::PimNeighbors,
            PimCmd::Interfaces => Request::PimInterfaces,
            PimCmd::AddNeighbor {
                address,
                interface,
                priority,
                tag,
            } => Request::PimAddNeighbor {
                interface: interface.clone(),
                address: *address,
                priority: *priority,
                tag: tag.clone(),
            },
            PimCmd::RemoveNeighbor { address, interface } => Request::PimRemoveNeighbor {
                interface: interface.clone(),
                address: *address,
            },
            PimCmd::ExternalNeighbors => Request::PimExternalNeighbors,
            PimCmd::ClearNeighbors { interface } => Request::PimClearNeighbors {
                interface: interface.clone(),
            },
            PimCmd::AddRpfRoute {
                source,
                interface,
                neighbor,
                metric,
            } => Request::PimAddRpfRoute {
                source: source.clone(),
                interface: interface.clone(),
                neighbor: *neighbor,
                metric: *metric,
            },
            PimCmd::RemoveRpfRoute { source } => Request::PimRemoveRpfRoute {
                source: source.clone(),
            },
            PimCmd::ListRpfRoutes => Request::PimListRpfRoutes,
            PimCmd::ClearRpfRoutes => Request::PimClearRpfRoutes,
            PimCmd::QueryRpf { source } => Request::PimQueryRpf { source: *source },
            PimCmd::JoinState => Request::PimJoinState,
            PimCmd::Rp { group } => Request::PimRp { group: *group },
            PimCmd::SetStaticRp { group, rp } => Request::PimSetStaticRp {
                group: group.clone(),
                rp: *rp,
            },
            PimCmd::SetRp { address, clear } => Request::PimSetRp {
                address: *address,
                clear: *clear,
            },
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
        Cmd::Msdp(m) => match m {
            MsdpCmd::Peers => Request::MsdpPeers,
            MsdpCmd::SaCache { group, peer } => Request::MsdpSaCache {
                group: *group,
                peer: *peer,
            },
            MsdpCmd::AddPeer {
                address,
                description,
                mesh_group,
                default_peer,
            } => Request::MsdpAddPeer {
                address: *address,
                description: description.clone(),
                mesh_group: mesh_group.clone(),
                default_peer: *default_peer,
            },
            MsdpCmd::RemovePeer { address } => Request::MsdpRemovePeer { address: *address },
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
