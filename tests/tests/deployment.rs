//! Deployment: the files in docs/deploy/ work as shipped (systemd units
//! verify, the namespace script builds and removes working namespaces),
//! several instances run side by side in their own namespaces, and
//! docs/reference.md lists exactly the options the binaries accept.

use mcr_tests::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

// ---------------------------------------------------------------- systemd

/// `systemd-analyze verify` on a unit file; returns the problems it
/// reported (stderr lines) after the exit status was checked.
fn verify_unit(dir: &TempDir, shipped: &str, as_name: &str) -> Vec<String> {
    let text = read(shipped).replace("/usr/bin/mcrd", bin("mcrd").to_str().unwrap());
    let unit = dir.file(as_name, &text);
    let out = run("systemd-analyze", &["verify", unit.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "systemd-analyze verify {as_name} failed ({}):\n{stderr}",
        out.status
    );
    stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        // The namespace and the user exist on a deployed host, not here.
        .filter(|l| !l.contains("/run/netns/") && !l.contains("user mcr"))
        .map(str::to_string)
        .collect()
}

#[test]
fn systemd_units_and_snippets_verify() {
    assert!(
        have("systemd-analyze"),
        "systemd-analyze not found: install the Debian package 'systemd' \
         (apt-get install systemd; tests/run.sh installs it)"
    );
    let dir = TempDir::new(&format!("{}-units", unique_tag()));
    let warnings = verify_unit(&dir, "docs/deploy/mcrd.service", "mcrd.service");
    assert!(warnings.is_empty(), "mcrd.service: {warnings:#?}");
    // The template is verified as an instance, as systemd would load it.
    let warnings = verify_unit(&dir, "docs/deploy/mcrd@.service", "mcrd@red.service");
    assert!(warnings.is_empty(), "mcrd@red.service: {warnings:#?}");

    let template = read("docs/deploy/mcrd@.service");
    for needle in [
        "NetworkNamespacePath=/run/netns/%i",
        "--config /etc/mcr/%i.json5",
        "--control-socket-path /run/mcr/mcrd-%i.sock",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=mcr",
        "Group=mcr",
        "AmbientCapabilities=CAP_NET_RAW CAP_SETUID CAP_SETGID",
        "CapabilityBoundingSet=CAP_NET_RAW CAP_SETUID CAP_SETGID",
        "RuntimeDirectory=mcr",
        "RuntimeDirectoryPreserve=yes",
        "LimitMEMLOCK=",
    ] {
        assert!(template.contains(needle), "mcrd@.service lacks {needle}");
    }

    // sysusers.d and tmpfiles.d snippets, applied to a scratch root.
    let root = dir.path("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let root_arg = format!("--root={}", root.display());
    let sysusers = repo_file("docs/deploy/sysusers.d/mcr.conf");
    let tmpfiles = repo_file("docs/deploy/tmpfiles.d/mcr.conf");
    sh(
        "systemd-sysusers",
        &[
            &root_arg,
            sysusers.canonicalize().unwrap().to_str().unwrap(),
        ],
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let mcr = passwd
        .lines()
        .find(|l| l.starts_with("mcr:"))
        .unwrap_or_else(|| panic!("no user mcr in {passwd}"));
    let uid: u32 = mcr.split(':').nth(2).unwrap().parse().unwrap();
    sh(
        "systemd-tmpfiles",
        &[
            "--create",
            &root_arg,
            tmpfiles.canonicalize().unwrap().to_str().unwrap(),
        ],
    );
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(root.join("run/mcr")).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
    assert_eq!(meta.uid(), uid);
}

// ------------------------------------------------------- setup-namespace.sh

const RUN_DIR: &str = "/run/mcr";

fn socket_of(ns: &str) -> PathBuf {
    PathBuf::from(format!("{RUN_DIR}/mcrd-{ns}.sock"))
}

/// Runs docs/deploy/setup-namespace.sh with our binaries.
fn script(args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(repo_file("docs/deploy/setup-namespace.sh"))
        .args(args)
        .env("MCRD", bin("mcrd"))
        .env("MCRCTL", bin("mcrctl"))
        .output()
        .expect("run setup-namespace.sh")
}

/// A namespace made by the script; `down` (and a plain `ip netns del` as a
/// fallback) on drop.
struct ScriptNs {
    name: String,
}

impl Drop for ScriptNs {
    fn drop(&mut self) {
        let _ = script(&["down", &self.name]);
        let _ = run("ip", &["netns", "del", &self.name]);
        let _ = std::fs::remove_file(format!("{RUN_DIR}/mcrd-{}.log", self.name));
        if std::thread::panicking() {
            eprintln!("(namespace {} removed)", self.name);
        }
    }
}

/// IDs for 10.ID.0.0/24 host-side addresses no interface of the host uses.
fn free_ids(n: usize) -> Vec<u32> {
    let addrs = sh("ip", &["-4", "-o", "addr", "show"]);
    let start = 200 + std::process::id() % 50;
    (0..55)
        .map(|k| 200 + (start - 200 + k) % 55)
        .filter(|id| !addrs.contains(&format!(" 10.{id}.")))
        .take(n)
        .collect()
}

/// `mcrctl --json ARGS` inside namespace `ns`, using the default socket.
fn ctl_in_ns(ns: &str, args: &[&str]) -> Value {
    let out = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(bin("mcrctl"))
        .arg("--json")
        .args(args)
        .env_remove("MCR_SOCKET")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip netns exec {ns} mcrctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ctl_host(socket: &Path, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = mcrctl(socket, &full);
    assert_eq!(out.code, 0, "mcrctl {args:?}: {out:?}");
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn setup_script_builds_and_removes_working_namespaces() {
    let dir = TempDir::new(&format!("{}-script", unique_tag()));
    let ids = free_ids(2);
    assert_eq!(ids.len(), 2, "no free 10.ID.0.0/24 ranges on this host");
    let mut made = Vec::new();
    for id in &ids {
        let name = unique_tag();
        assert!(name.len() <= 7, "{name}: too long for veth-NAME-ns");
        // A config with one rule on the namespace's end of the veth (an
        // output on the input's interface with another group is allowed).
        let cfg = dir.file(
            &format!("{name}.json5"),
            &format!(
                "{{ rules: [ {} ] }}",
                rule(
                    "from-host",
                    &format!("veth-{name}-ns"),
                    "239.1.1.1",
                    5000,
                    &[output(&format!("veth-{name}-ns"), "239.2.2.2", 6000)]
                )
            ),
        );
        let guard = ScriptNs { name: name.clone() };
        let out = script(&["up", &name, &id.to_string(), cfg.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "setup-namespace.sh up {name} {id}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        made.push((guard, *id));
    }

    for (ns, id) in &made {
        let name = &ns.name;
        let socket = socket_of(name);
        let from_host = ctl_host(&socket, &["status"]);
        assert_eq!(from_host["namespace"]["name"], name.as_str());
        let pid: u64 = std::fs::read_to_string(format!("{RUN_DIR}/mcrd-{name}.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(from_host["pid"], pid);
        assert_eq!(from_host["rules"]["active"], 1, "{from_host}");
        let inside = ctl_in_ns(name, &["status"]);
        assert_eq!(
            inside["pid"], pid,
            "ip netns exec {name} mcrctl reached another mcrd"
        );
        assert_eq!(inside["control_socket"], socket.to_str().unwrap());

        // The addresses the script promises.
        let host_side = sh(
            "ip",
            &["-4", "-o", "addr", "show", "dev", &format!("veth-{name}")],
        );
        assert!(
            host_side.contains(&format!("10.{id}.0.1/24")),
            "{host_side}"
        );
        let ns_side = sh(
            "ip",
            &[
                "-n",
                name,
                "-4",
                "-o",
                "addr",
                "show",
                "dev",
                &format!("veth-{name}-ns"),
            ],
        );
        assert!(ns_side.contains(&format!("10.{id}.0.2/24")), "{ns_side}");
        let lo = sh("ip", &["-n", name, "-o", "link", "show", "lo"]);
        assert!(lo.contains("UP"), "lo is not up: {lo}");
    }

    // A name too long for the veth names is refused before anything exists.
    let long = script(&["up", "toolong1", "3", "/dev/null"]);
    assert_eq!(long.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&long.stderr).contains("at most 7"));

    for (ns, _) in &made {
        let name = ns.name.clone();
        let pid: i32 = std::fs::read_to_string(format!("{RUN_DIR}/mcrd-{name}.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let out = script(&["down", &name]);
        assert!(
            out.status.success(),
            "down {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list = sh("ip", &["netns", "list"]);
        assert!(
            !list.split_whitespace().any(|w| w == name),
            "{name} still listed: {list}"
        );
        assert!(!socket_of(&name).exists(), "socket of {name} left behind");
        assert!(!Path::new(&format!("{RUN_DIR}/mcrd-{name}.pid")).exists());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "mcrd {pid} still running"
        );
        // The kernel tears a deleted namespace down asynchronously (its
        // devices, and so the host end of the veth, go in a batched work
        // item), which takes longer while other tests delete namespaces.
        let gone = wait_until(Duration::from_secs(5), || {
            !run("ip", &["link", "show", &format!("veth-{name}")])
                .status
                .success()
        });
        assert!(gone, "host veth of {name} left behind");
    }
}

// ----------------------------------------------------------------- red/blue

/// One relay namespace with its own sender and sink namespaces:
/// snd --(g | i)-- relay --(o | l)-- snk.
struct Site {
    relay: Netns,
    snd: Netns,
    snk: Netns,
    tag: String,
}

impl Site {
    fn new(tag: &str, net: u32) -> Site {
        let s = Site {
            relay: Netns::new(tag.to_string()),
            snd: Netns::new(format!("{tag}s")),
            snk: Netns::new(format!("{tag}k")),
            tag: tag.to_string(),
        };
        veth(
            &s.snd,
            &s.ifname("g"),
            &format!("10.{net}.0.1/24"),
            &s.relay,
            &s.ifname("i"),
            &format!("10.{net}.0.2/24"),
        );
        veth(
            &s.relay,
            &s.ifname("o"),
            &format!("10.{}.0.1/24", net + 1),
            &s.snk,
            &s.ifname("l"),
            &format!("10.{}.0.2/24", net + 1),
        );
        s
    }

    fn ifname(&self, role: &str) -> String {
        format!("{}{role}", self.tag)
    }

    fn config(&self, group_in: &str, group_out: &str, port: u16) -> String {
        format!(
            "{{ rules: [ {} ] }}",
            rule(
                "stream",
                &self.ifname("i"),
                group_in,
                port,
                &[output(&self.ifname("o"), group_out, port)]
            )
        )
    }

    /// mcrd in this site's relay namespace with its own config file and the
    /// socket path a namespaced deployment uses.
    fn mcrd(&self, dir: &TempDir, config: &str) -> Mcrd {
        let socket = socket_of(&self.relay.name);
        let mut m = Mcrd::spawn(
            &self.relay,
            dir,
            &self.relay.name,
            config,
            &["--control-socket-path", socket.to_str().unwrap()],
        );
        m.wait_log("mcrd ready", Duration::from_secs(10));
        m
    }
}

struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[test]
fn red_and_blue_instances_forward_independently() {
    let tag = unique_tag();
    let dir = TempDir::new(&format!("{tag}-rb"));
    std::fs::create_dir_all(RUN_DIR).unwrap();
    let red = Site::new(&format!("{tag}r"), 81);
    let blue = Site::new(&format!("{tag}b"), 83);
    // Declared before the daemons, so dropped after them: a socket left by
    // an mcrd killed on a failure path is removed too.
    let _sockets = RemoveOnDrop(vec![
        socket_of(&red.relay.name),
        socket_of(&blue.relay.name),
    ]);
    let red_mcrd = red.mcrd(&dir, &red.config("239.1.1.1", "239.2.2.2", 5000));
    let mut blue_mcrd = blue.mcrd(&dir, &blue.config("239.1.1.1", "239.3.3.3", 5000));

    // Each instance is reached from the host by its socket path and from
    // inside its namespace by the default path; both are the same process.
    for (site, m) in [(&red, &red_mcrd), (&blue, &blue_mcrd)] {
        let host = ctl_host(&m.socket, &["status"]);
        assert_eq!(host["pid"], m.pid());
        assert_eq!(host["namespace"]["name"], site.relay.name.as_str());
        assert_eq!(host["rules"]["active"], 1, "{host}");
        let inside = ctl_in_ns(&site.relay.name, &["status"]);
        assert_eq!(inside["pid"], m.pid());
    }
    assert_ne!(red_mcrd.pid(), blue_mcrd.pid());

    const RED_COUNT: u64 = 16_000; // 8 s at 2000 pps: spans blue's stop
    const BLUE_COUNT: u64 = 4_000;
    let red_listener = Listener::start(
        &red.snk,
        &dir,
        &red.ifname("l"),
        "239.2.2.2",
        5000,
        &["--idle-timeout", "3"],
    );
    let blue_listener = Listener::start(
        &blue.snk,
        &dir,
        &blue.ifname("l"),
        "239.3.3.3",
        5000,
        &["--idle-timeout", "2"],
    );
    let red_gen = Generator::spawn(
        &red.snd,
        &red.ifname("g"),
        "239.1.1.1",
        5000,
        &["--rate", "2000", "--count", &RED_COUNT.to_string()],
    );
    // Blue's stream runs at the same time, with the same input group and
    // port as red's: the namespaces keep them apart.
    let blue_sent = generate(
        &blue.snd,
        &blue.ifname("g"),
        "239.1.1.1",
        5000,
        &["--rate", "2000", "--count", &BLUE_COUNT.to_string()],
    );
    assert_eq!(blue_sent["sent"], BLUE_COUNT);
    assert_exact(&blue_listener.finish(), BLUE_COUNT);

    // Stop blue while red's stream is still running.
    let (_, status) = blue_mcrd.stop();
    assert!(status.success(), "blue exited with {status}");
    assert!(!blue_mcrd.socket.exists(), "blue left its socket behind");
    let red_so_far = ctl_host(&red_mcrd.socket, &["stats"])["rules"][0]["packets"]
        .as_u64()
        .unwrap();
    assert!(
        red_so_far < RED_COUNT,
        "red's stream ended before blue stopped ({red_so_far} packets): the test proves nothing"
    );
    assert_eq!(ctl_in_ns(&red.relay.name, &["ping"])["pong"], true);

    let red_sent = red_gen.finish();
    assert_eq!(red_sent["sent"], RED_COUNT);
    assert_exact(&red_listener.finish(), RED_COUNT);
    let stats = ctl_host(&red_mcrd.socket, &["stats"]);
    assert_eq!(stats["rules"][0]["packets"], RED_COUNT, "{stats}");
}

// ------------------------------------------------------------ reference.md

/// `--flag` words in `text` (`--[a-z][a-z0-9-]*`).
fn flags(text: &str) -> BTreeSet<String> {
    let b = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i + 2 < b.len() {
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'-');
        if boundary && b[i] == b'-' && b[i + 1] == b'-' && b[i + 2].is_ascii_lowercase() {
            let mut j = i + 3;
            while j < b.len()
                && (b[j].is_ascii_lowercase() || b[j].is_ascii_digit() || b[j] == b'-')
            {
                j += 1;
            }
            out.insert(text[i..j].trim_end_matches('-').to_string());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// reference.md: for every section headed by a command in backticks
/// (e.g. "### `mcrctl log-level set`"), the flags in the first column of
/// its tables.
fn reference_sections() -> BTreeMap<String, BTreeSet<String>> {
    let text = read("docs/reference.md");
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('#') {
            let title = line.trim_start_matches('#').trim();
            current = title
                .strip_prefix('`')
                .and_then(|t| t.strip_suffix('`'))
                .filter(|t| !t.contains('`'))
                .filter(|t| t.starts_with("mcrd") || t.starts_with("mcrctl"))
                .map(str::to_string);
            if let Some(c) = &current {
                assert!(
                    sections.insert(c.clone(), BTreeSet::new()).is_none(),
                    "reference.md has two sections for `{c}`"
                );
            }
            continue;
        }
        if let (Some(c), Some(row)) = (&current, line.strip_prefix('|')) {
            let first = row.split('|').next().unwrap_or("");
            sections.get_mut(c).unwrap().extend(flags(first));
        }
    }
    sections
}

/// The `--help` of a command: its options (the flags after "Options:"),
/// without --help, and its subcommands (from "Commands:", without help).
fn help_of(path: &[&str]) -> (BTreeSet<String>, Vec<String>) {
    let mut args: Vec<&str> = path[1..].to_vec();
    args.push("--help");
    let out = Command::new(bin(path[0]))
        .args(&args)
        .env_remove("MCR_SOCKET")
        .output()
        .unwrap();
    assert!(out.status.success(), "{path:?} --help failed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut options = BTreeSet::new();
    let mut commands = Vec::new();
    let mut block = "";
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            block = if line == "Options:" {
                "options"
            } else if line == "Commands:" {
                "commands"
            } else {
                ""
            };
            continue;
        }
        match block {
            "options" => options.extend(flags(line)),
            "commands" => {
                if let Some(name) = line.split_whitespace().next() {
                    if line.starts_with("  ") && !line.starts_with("   ") && name != "help" {
                        commands.push(name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    options.remove("--help");
    (options, commands)
}

fn check_command(
    path: &[&str],
    inherited: &BTreeSet<String>,
    sections: &BTreeMap<String, BTreeSet<String>>,
    problems: &mut Vec<String>,
) {
    let key = path.join(" ");
    let (help, subcommands) = help_of(path);
    let Some(documented) = sections.get(&key) else {
        problems.push(format!("reference.md has no section `{key}`"));
        return;
    };
    for f in &help {
        if !documented.contains(f) && !inherited.contains(f) {
            problems.push(format!(
                "`{key}` accepts {f}, reference.md does not list it"
            ));
        }
    }
    for f in documented {
        if !help.contains(f) {
            problems.push(format!(
                "reference.md lists {f} for `{key}`, its --help does not"
            ));
        }
    }
    let mut inherited = inherited.clone();
    inherited.extend(documented.iter().cloned());
    for sub in &subcommands {
        let mut p = path.to_vec();
        p.push(sub);
        check_command(&p, &inherited, sections, problems);
    }
}

#[test]
fn reference_lists_exactly_the_options_of_every_command() {
    let sections = reference_sections();
    let mut problems = Vec::new();
    check_command(&["mcrd"], &BTreeSet::new(), &sections, &mut problems);
    check_command(&["mcrctl"], &BTreeSet::new(), &sections, &mut problems);
    // The subcommands the brief names must be among those checked.
    for must in [
        "mcrd supervisor",
        "mcrd check-config",
        "mcrd listen",
        "mcrctl reload",
        "mcrctl log-level set",
        "mcrctl config save",
    ] {
        assert!(sections.contains_key(must), "no section `{must}`");
    }
    // The alias documented under `mcrctl cores` must keep working.
    let (workers, _) = help_of(&["mcrctl", "workers"]);
    let (cores, _) = help_of(&["mcrctl", "cores"]);
    assert_eq!(workers, cores);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
