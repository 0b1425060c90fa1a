//! Issue 12, items 1-7, 14 and 15: a hostile local user or control client
//! cannot make mcrd change a file's owner or mode, reach the socket it is
//! not allowed to, write or read files outside the policy, hang it with a
//! FIFO, or mess up a terminal; mcrctl says what went wrong once and
//! clearly. The races are loops of many starts against a loop running as
//! `nobody`, each bounded to a few seconds.

use mcr_tests::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NOBODY: u32 = 65534;
/// mcrd starts per race test (each against the attacker's loop).
const STARTS: usize = 20;

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `mcr-race ARGS` running as nobody (no groups).
fn as_nobody(args: &[&str]) -> Child {
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(bin("mcr-race"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("setpriv mcr-race")
}

/// `mcrctl ARGS` as nobody, with `groups` (numeric, comma-separated) or none.
fn mcrctl_as_nobody(socket: &Path, groups: &str, args: &[&str]) -> Ctl {
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup"])
        .arg(if groups.is_empty() {
            "--clear-groups".to_string()
        } else {
            format!("--groups={groups}")
        })
        .arg(bin("mcrctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    Ctl {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits until mcrd is ready (true) or has exited (false).
fn ready_or_exit(m: &mut Mcrd) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if m.log_text().contains("mcrd ready") {
            return true;
        }
        if m.wait_exit(Duration::from_millis(5)).is_some() {
            return false;
        }
    }
    panic!("mcrd neither ready nor gone:\n{}", m.log_text());
}

/// Item 1: started as root with `--user nobody` in a directory nobody
/// owns, while nobody keeps swapping the socket (and anything else mcrd
/// creates there) for symlinks to a root-only file, that file's owner and
/// mode never change.
#[test]
fn socket_symlink_race_never_changes_a_victims_owner_or_mode() {
    let tag = unique_tag();
    let ns = Netns::new(format!("{tag}-rly"));
    let dir = TempDir::new(&tag);
    let victim = dir.file("victim", "root only\n");
    chmod(&victim, 0o600);
    let d = dir.path("d");
    std::fs::create_dir(&d).unwrap();
    chown(&d, NOBODY, NOBODY);
    let sock = d.join("m.sock");
    let sock_s = sock.to_str().unwrap().to_string();
    let stop = dir.path("stop");
    let attacker = as_nobody(&[
        "symlink",
        &sock_s,
        victim.to_str().unwrap(),
        stop.to_str().unwrap(),
    ]);
    let mut attacker = Some(attacker);
    let mut ready = 0;
    for start in 0..STARTS {
        // The attacker removes its symlink once things are quiet; a start
        // with it still there would only be refused (not a socket).
        wait_until(Duration::from_secs(1), || {
            !std::fs::symlink_metadata(&sock).is_ok_and(|m| m.file_type().is_symlink())
        });
        let mut m = Mcrd::spawn(
            &ns,
            &dir,
            &format!("s{}", start % 4),
            "{}",
            &["--user", "nobody", "--control-socket-path", &sock_s],
        );
        if ready_or_exit(&mut m) {
            ready += 1;
            m.stop();
        }
        let meta = std::fs::metadata(&victim).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, 0, 0o600),
            "start {start}: the victim file changed"
        );
    }
    std::fs::write(&stop, "").unwrap();
    let out = attacker.take().unwrap().wait_with_output().unwrap();
    let swaps: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    // Most starts get through: the attacker removes its symlinks again.
    assert!(
        ready >= STARTS / 4,
        "only {ready} of {STARTS} starts got ready"
    );
    assert!(
        swaps >= STARTS as u64 / 2,
        "the attacker hardly struck: {swaps}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root only\n");
    let _ = std::fs::remove_file(&sock);
    // Left alone, the same start serves a socket root owns, mode 0660.
    let mut m = Mcrd::spawn(
        &ns,
        &dir,
        "calm",
        "{}",
        &["--user", "nobody", "--control-socket-path", &sock_s],
    );
    m.wait_log("mcrd ready", Duration::from_secs(10));
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o660));
    assert!(std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()));
    eprintln!("{STARTS} starts ({ready} ready), {swaps} swaps");
}

/// Item 2: under `umask 000`, a process of another user spinning on
/// connect() during many starts is never let in, and the directory mcrd
/// creates on the way gets 0755, not 0777.
#[test]
fn under_umask_000_the_socket_is_never_reachable_by_others() {
    let tag = unique_tag();
    let ns = Netns::new(format!("{tag}-rly"));
    let dir = TempDir::new(&tag);
    let sock = dir.path("new/m.sock");
    let sock_s = sock.to_str().unwrap().to_string();
    let stop = dir.path("stop");
    let spinner = as_nobody(&["connect", &sock_s, stop.to_str().unwrap()]);
    let umask0 = ["sh", "-c", "umask 000; exec \"$0\" \"$@\""];
    for start in 0..STARTS {
        let mut m = Mcrd::spawn_as(
            &ns,
            &dir,
            &format!("u{}", start % 4),
            "{}",
            &umask0,
            &["--control-socket-path", &sock_s],
        );
        assert!(ready_or_exit(&mut m), "{}", m.log_text());
        let dmode = std::fs::metadata(dir.path("new")).unwrap().mode() & 0o7777;
        let smode = std::fs::symlink_metadata(&sock).unwrap().mode() & 0o7777;
        assert_eq!((dmode, smode), (0o755, 0o660), "start {start}");
        m.stop();
    }
    std::fs::write(&stop, "").unwrap();
    let mut spinner = Some(spinner);
    let out = spinner.take().unwrap().wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let n: Vec<u64> = text.split(' ').map(|v| v.parse().unwrap()).collect();
    assert_eq!(
        &n[..2],
        &[0, 0],
        "accepted and answered connections as nobody"
    );
    assert!(n[2] > 1000, "the spinner hardly ran: {text}");
    // The root-run mcrd removed the socket and the directory it made.
    assert!(!dir.path("new").exists());
}

/// Item 3: with `--user nobody` the socket is not nobody's: a process
/// running as nobody cannot connect, unless it is in the socket's group.
/// Start warns that nobody is a shared account.
#[test]
fn runtime_user_nobody_does_not_get_the_socket() {
    let tag = unique_tag();
    let ns = Netns::new(format!("{tag}-rly"));
    let dir = TempDir::new(&tag);
    let group = format!("mcrh{}", std::process::id() % 100000);
    let _ = run("groupdel", &[&group]);
    sh("groupadd", &[&group]);
    struct Group(String);
    impl Drop for Group {
        fn drop(&mut self) {
            let _ = run("groupdel", &[&self.0]);
        }
    }
    let group = Group(group);
    let gid: u32 = sh("getent", &["group", &group.0])
        .split(':')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    for with_group in [false, true] {
        let mut extra = vec!["--user", "nobody"];
        if with_group {
            extra.extend(["--control-socket-group", &group.0]);
        }
        let mut m = Mcrd::spawn(&ns, &dir, &format!("g{with_group}"), "{}", &extra);
        m.wait_log("mcrd ready", Duration::from_secs(10));
        let log = m.log_text();
        assert!(
            log.contains("user 'nobody' is an account other services share"),
            "{log}"
        );
        let meta = std::fs::symlink_metadata(&m.socket).unwrap();
        let want_gid = if with_group { gid } else { 0 };
        assert_eq!((meta.uid(), meta.gid()), (0, want_gid));
        let out = mcrctl_as_nobody(&m.socket, "", &["ping"]);
        assert_eq!(out.code, 3, "{out:?}");
        assert_eq!(
            out.stderr.trim(),
            format!(
                "Error: Permission denied connecting to {}",
                m.socket.display()
            )
        );
        if with_group {
            let out = mcrctl_as_nobody(&m.socket, &gid.to_string(), &["ping"]);
            assert_eq!(out.code, 0, "a group member is let in: {out:?}");
        }
        // Root (the socket's owner) is let in.
        assert_eq!(m.ctl_json(&["ping"])["pong"], true);
        m.stop();
    }
}

/// A relay with `--save-dir`, for the file-policy tests: returns the
/// netns, the scratch dir, the save dir and the running mcrd.
fn with_save_dir(extra: &[&str]) -> (Netns, TempDir, PathBuf, Mcrd) {
    let tag = unique_tag();
    let ns = Netns::new(format!("{tag}-rly"));
    let dir = TempDir::new(&tag);
    let save = dir.path("save");
    std::fs::create_dir(&save).unwrap();
    chmod(&save, 0o755);
    let cfg = "{ rules: [ { name: \"a\", input: { interface: \"x0\", group: \"239.1.1.1\", port: 5000 }, outputs: [ { interface: \"y0\", group: \"239.2.2.2\", port: 6000 } ] } ] }";
    let mut args = vec!["--save-dir", save.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut m = Mcrd::spawn(&ns, &dir, "mcrd", cfg, &args);
    m.wait_log("mcrd ready", Duration::from_secs(10));
    (ns, dir, save, m)
}

/// Item 4: `config save` writes only the config file or files directly in
/// --save-dir; never through a planted symlink, never onto the socket,
/// never outside the policy; and --save-dir must not be group/other
/// writable.
#[test]
fn config_save_writes_only_where_the_policy_allows() {
    let (ns, dir, save, m) = with_save_dir(&[]);
    let victim = dir.file("victim", "root only\n");
    chmod(&victim, 0o600);
    // Allowed: a new file in the save dir, written whole.
    let out = save.join("out.json5");
    let r = m.ctl_json(&["config", "save", out.to_str().unwrap()]);
    assert_eq!(r["file"], out.to_str().unwrap());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("239.1.1.1"), "{text}");
    assert_eq!(std::fs::read_dir(&save).unwrap().count(), 1, "no temporary");
    // A symlink planted at the destination is refused, not followed.
    let planted = save.join("planted.json5");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let r = m.ctl(&["config", "save", planted.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("not a regular file"), "{r:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root only\n");
    assert!(std::fs::symlink_metadata(&planted).unwrap().is_symlink());
    // The daemon's own socket is never replaced (the config's directory
    // holds it here).
    let r = m.ctl(&["config", "save", m.socket.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(m.ctl_json(&["ping"])["pong"], true);
    // Outside the policy: refused before anything is touched.
    let elsewhere = dir.path("elsewhere.json5");
    let r = m.ctl(&["config", "save", elsewhere.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("reads and writes only"), "{r:?}");
    assert!(!elsewhere.exists());
    let sneaky = format!("{}/../elsewhere.json5", save.display());
    let r = m.ctl(&["--json", "config", "save", &sneaky]);
    assert!(r.stdout.contains("not_permitted"), "{r:?}");
    assert!(!elsewhere.exists());
    // No file named: the config file itself.
    let r = m.ctl_json(&["config", "save"]);
    assert_eq!(r["file"], dir.path("mcrd.json5").to_str().unwrap());
    // A save dir others may write is refused at start.
    let open = dir.path("open");
    std::fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    let mut bad = Mcrd::spawn(
        &ns,
        &dir,
        "open",
        "{}",
        &["--save-dir", open.to_str().unwrap()],
    );
    assert_eq!(bad.wait_exit(Duration::from_secs(10)), Some(1));
    assert!(
        bad.log_text()
            .contains("writable by its group or by others"),
        "{}",
        bad.log_text()
    );
}

/// Item 5: `reload --file` and `config check` read only the config file
/// and files in --save-dir; the refusal of any other path says nothing
/// about the file (the same words whether it exists, is readable or holds
/// JSON with secret keys).
#[test]
fn reload_file_reads_only_where_the_policy_allows_and_leaks_nothing() {
    let (_ns, dir, save, m) = with_save_dir(&[]);
    let secret = dir.file("secret.json", "{ \"github_token\": \"abc\" }");
    chmod(&secret, 0o600);
    let missing = dir.path("missing.json");
    for cmd in [&["reload", "--file"][..], &["config", "check"][..]] {
        let mut answers = Vec::new();
        for p in [&secret, &missing] {
            let mut args = cmd.to_vec();
            args.push(p.to_str().unwrap());
            let r = m.ctl(&args);
            assert_eq!(r.code, 1, "{r:?}");
            assert!(!r.stderr.contains("github_token"), "{r:?}");
            answers.push(r.stderr.replace(p.to_str().unwrap(), "FILE"));
        }
        assert_eq!(answers[0], answers[1], "an existence oracle");
        assert!(answers[0].contains("reads and writes only"), "{answers:?}");
    }
    // Allowed: a file in the save dir (here written by config save).
    let copy = save.join("copy.json5");
    m.ctl_json(&["config", "save", copy.to_str().unwrap()]);
    let r = m.ctl_json(&["reload", "--dry-run", "--file", copy.to_str().unwrap()]);
    assert_eq!(r["unchanged"], 1, "{r:#}");
    let r = m.ctl_json(&["config", "check", copy.to_str().unwrap()]);
    assert_eq!(r["valid"], true);
    // A symlink in the save dir is not followed out of it.
    let link = save.join("link.json5");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    let r = m.ctl(&["reload", "--file", link.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!r.stderr.contains("github_token"), "{r:?}");
}

/// Item 6: a config only root may read, with --user: start says that
/// reloads will fail, and they do, with the running rules kept.
#[test]
fn a_config_the_runtime_user_cannot_read_is_reported_at_start() {
    let tag = unique_tag();
    let ns = Netns::new(format!("{tag}-rly"));
    let dir = TempDir::new(&tag);
    let cfg = dir.file("root-only.json5", "{}");
    chmod(&cfg, 0o600);
    // Start with a config that is 0600 from the beginning.
    let log = dir.path("ro3.log");
    let sock = dir.path("ro3.sock");
    let child = ns
        .command(&bin("mcrd"))
        .args(["supervisor", "--config"])
        .arg(&cfg)
        .arg("--control-socket-path")
        .arg(&sock)
        .args(["--user", "nobody"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: kill(2) on a child we spawned.
            unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
            let _ = self.0.wait();
        }
    }
    let _child = Kill(child);
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("mcrd ready")),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("cannot be read by user 'nobody'") && text.contains("every reload"),
        "{text}"
    );
    let r = mcrctl(&sock, &["reload"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("Permission denied"), "{r:?}");
}

/// Item 7: swapping the config for a FIFO or a symlink to a 1 GiB file
/// makes `reload` fail at once (the file is opened without blocking, read
/// once, capped), and SIGTERM still stops mcrd promptly.
#[test]
fn reload_of_a_fifo_or_huge_file_fails_at_once_and_sigterm_works() {
    let tag = unique_tag();
    let ns = Netns::new(format!("{tag}-rly"));
    let dir = TempDir::new(&tag);
    let mut m = Mcrd::spawn(&ns, &dir, "mcrd", "{}", &[]);
    m.wait_log("mcrd ready", Duration::from_secs(10));
    let cfg = dir.path("mcrd.json5");
    std::fs::remove_file(&cfg).unwrap();
    sh("mkfifo", &[cfg.to_str().unwrap()]);
    let t0 = Instant::now();
    let r = m.ctl(&["--timeout", "5", "reload"]);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("not a regular file"), "{r:?}");
    std::fs::remove_file(&cfg).unwrap();
    let big = dir.path("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    std::os::unix::fs::symlink(&big, &cfg).unwrap();
    let t0 = Instant::now();
    let r = m.ctl(&["--timeout", "5", "reload"]);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(r.stderr.contains("MiB a config file may have"), "{r:?}");
    assert_eq!(m.ctl_json(&["ping"])["pong"], true);
    // A good file again: the hash `status` shows is of the bytes applied.
    std::fs::remove_file(&cfg).unwrap();
    let text = "{ data_plane: { kernel_fast_path: false } }\n";
    std::fs::write(&cfg, text).unwrap();
    m.ctl_json(&["reload"]);
    let hash = m.ctl_json(&["status"])["config_hash"].clone();
    assert_eq!(hash, format!("{:016x}", fnv1a64(text.as_bytes())));
    let (took, status) = m.stop();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
}

/// FNV-1a 64, as `status.config_hash` reports it.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

fn add_named(m: &Mcrd, name: &str, port: &str) -> Ctl {
    m.ctl(&[
        "add",
        "--input-interface",
        "x0",
        "--input-group",
        "239.1.1.1",
        "--input-port",
        port,
        "--outputs",
        "239.2.2.2:6000:y0",
        "--name",
        name,
    ])
}

/// Item 14: rule names are bounded and plain; long names never make
/// `list` or `stats` panic; an ESC in an interface name never reaches the
/// text log raw.
#[test]
fn rule_names_are_checked_and_untrusted_text_is_escaped() {
    let tag = unique_tag();
    let ns = Netns::new(format!("{tag}-rly"));
    let dir = TempDir::new(&tag);
    // The rules' interfaces exist, and the multicast output's has an IPv4
    // address (without one it would wait for it), so a rule is active and
    // in `stats`.
    ns.ip(&["link", "add", "x0", "type", "veth", "peer", "name", "y0"]);
    for i in ["x0", "y0"] {
        ns.ip(&["link", "set", i, "up"]);
    }
    ns.ip(&["addr", "add", "10.79.0.1/24", "dev", "y0"]);
    let mut m = Mcrd::spawn(&ns, &dir, "mcrd", "{}", &[]);
    m.wait_log("mcrd ready", Duration::from_secs(10));
    for (name, cp) in [
        ("pay\u{202e}fdp.exe", "U+202E"),
        ("zero\u{200b}width", "U+200B"),
        ("line\u{2028}sep", "U+2028"),
        ("esc\u{1b}[2J", "U+001B"),
    ] {
        let r = add_named(&m, name, "1");
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains(cp), "{r:?}");
        assert!(
            !r.stderr.contains(name),
            "the character is shown escaped: {r:?}"
        );
    }
    let long = "n".repeat(129);
    let r = add_named(&m, &long, "1");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("at most 128 bytes"), "{r:?}");
    let longest = "n".repeat(128);
    assert_eq!(add_named(&m, &longest, "2").code, 0);
    for cmd in ["list", "stats"] {
        let r = m.ctl(&[cmd]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains(&longest), "{r:?}");
        assert!(!r.stderr.contains("panicked"), "{r:?}");
    }
    // An interface whose name holds ESC (Linux allows it) appears.
    let evil = "e\u{1b}[31mq";
    ns.ip(&[
        "link",
        "add",
        "name",
        evil,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{tag}p"),
    ]);
    m.wait_log("interface appeared", Duration::from_secs(5));
    assert!(
        wait_until(Duration::from_secs(5), || m
            .log_text()
            .contains("e\\u{1b}[31mq")),
        "{}",
        m.log_text()
    );
    assert!(!m.log_text().contains('\u{1b}'), "raw ESC in the log");
}

/// A fake daemon: says hello, then answers each request line with
/// `answer` (or nothing when `None`).
fn fake_daemon(path: &Path, answer: Option<String>) -> std::thread::JoinHandle<()> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        if let Ok((s, _)) = listener.accept() {
            let mut w = s.try_clone().unwrap();
            let _ = writeln!(
                w,
                "{{\"hello\":\"mcrd\",\"version\":\"0.1.0\",\"protocol\":1}}"
            );
            let mut line = String::new();
            let _ = BufReader::new(s).read_line(&mut line);
            match answer {
                Some(a) => {
                    let _ = w.write_all(a.as_bytes());
                    let _ = w.write_all(b"\n");
                }
                None => std::thread::sleep(Duration::from_secs(3)),
            }
        }
    })
}

/// Item 15: mcrctl's timeout, closed-pipe and long-path messages.
#[test]
fn mcrctl_says_timeouts_and_path_limits_plainly_and_survives_a_closed_pipe() {
    let dir = TempDir::new(&unique_tag());
    // A daemon that never answers.
    let silent = dir.path("silent.sock");
    let h = fake_daemon(&silent, None);
    let t0 = Instant::now();
    let r = mcrctl(&silent, &["--timeout", "1", "status"]);
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr
            .starts_with("Error: the daemon did not answer within 1 s"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("os error"), "{r:?}");
    h.join().unwrap();
    // `| head -1` closes the pipe while mcrctl still writes ~1 MB.
    let chatty = dir.path("chatty.sock");
    let big = "x\n".repeat(500_000);
    let answer = serde_json::json!({"ok": true, "result": {"json5": big}}).to_string();
    let h = fake_daemon(&chatty, Some(answer));
    let script = format!(
        "\"{}\" --socket \"{}\" config show 2>\"{}\" | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}",
        bin("mcrctl").display(),
        chatty.display(),
        dir.path("err").display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    h.join().unwrap();
    let err = std::fs::read_to_string(dir.path("err")).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "{err}");
    assert!(err.is_empty(), "{err}");
    // A socket path too long for sun_path: said once, by both programs.
    let long = format!("/tmp/{}", "l".repeat(120));
    let r = mcrctl(Path::new(&long), &["status"]);
    assert_eq!(r.code, 3);
    assert_eq!(r.stderr.matches("SUN_LEN").count(), 1, "{r:?}");
    let out = Command::new(bin("mcrd"))
        .args(["supervisor", "--control-socket-path", &long])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("Error:")).unwrap();
    assert_eq!(line.matches("shorter than 108 bytes").count(), 1, "{err}");
    assert_eq!(err.matches("Error:").count(), 1, "{err}");
}

/// Item 5, inside the policy: a file in --save-dir the client could not
/// read itself fails without its problems (which quote it) in the answer;
/// root, who can read it, gets them.
#[test]
fn a_client_is_not_told_the_contents_of_a_file_it_cannot_read() {
    let group = format!("mcrr{}", std::process::id() % 100000);
    let _ = run("groupdel", &[&group]);
    sh("groupadd", &[&group]);
    struct Group(String);
    impl Drop for Group {
        fn drop(&mut self) {
            let _ = run("groupdel", &[&self.0]);
        }
    }
    let group = Group(group);
    let gid = sh("getent", &["group", &group.0])
        .split(':')
        .nth(2)
        .unwrap()
        .to_string();
    let (_ns, _dir, save, m) = with_save_dir(&["--control-socket-group", &group.0]);
    let secret = save.join("secret.json5");
    std::fs::write(&secret, "{ github_token: \"abc\" }").unwrap();
    chmod(&secret, 0o600);
    let file = secret.to_str().unwrap();
    for cmd in [
        &["reload", "--file", file][..],
        &["config", "check", file][..],
    ] {
        let r = mcrctl_as_nobody(&m.socket, &gid, cmd);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(!r.stderr.contains("github_token"), "{r:?}");
        assert!(r.stderr.contains("may not read it"), "{r:?}");
        let r = m.ctl(cmd);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("unknown key 'github_token'"), "{r:?}");
    }
    // Readable by everyone: the client is told the problems.
    chmod(&secret, 0o644);
    let r = mcrctl_as_nobody(&m.socket, &gid, &["config", "check", file]);
    assert!(r.stderr.contains("github_token"), "{r:?}");
}
