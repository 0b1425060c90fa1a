//! Least privilege: mcrd switches to an unprivileged user keeping only
//! CAP_NET_RAW, and says clearly when that capability is missing.

use mcr_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// A system user created for the test and deleted after it.
struct TempUser(String);

impl TempUser {
    fn new() -> TempUser {
        let name = format!("mcru{}", unique_tag());
        let _ = run("userdel", &[&name]);
        sh(
            "useradd",
            &[
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ],
        );
        TempUser(name)
    }

    fn id(&self, flag: &str) -> u32 {
        sh("id", &[flag, &self.0]).trim().parse().unwrap()
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = run("userdel", &[&self.0]);
    }
}

fn status_field(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// CAP_NET_RAW is capability 13.
const NET_RAW_MASK: u64 = 1 << 13;

fn caps_of(pid: u32, key: &str) -> u64 {
    u64::from_str_radix(&status_field(pid, key), 16).unwrap()
}

#[test]
fn root_start_with_user_drops_to_that_user_and_keeps_only_net_raw() {
    let user = TempUser::new();
    let tag = unique_tag();
    let src = Netns::new(format!("{tag}-src"));
    let relay = Netns::new(format!("{tag}-rly"));
    let sink = Netns::new(format!("{tag}-snk"));
    let dir = TempDir::new(&tag);
    let (g, i, o, s) = (
        format!("{tag}g"),
        format!("{tag}i"),
        format!("{tag}o"),
        format!("{tag}s"),
    );
    veth(&relay, &o, "10.78.0.1/24", &sink, &s, "10.78.0.2/24");
    let late_i = format!("{tag}j");
    let cfg = format!(
        "{{ rules: [ {}, {} ] }}",
        rule(
            "now",
            &i,
            "239.1.1.1",
            5000,
            &[output(&o, "239.2.2.1", 6000)]
        ),
        rule(
            "later",
            &late_i,
            "239.1.1.2",
            5000,
            &[output(&o, "239.2.2.2", 6000)]
        )
    );
    veth(&src, &g, "10.77.0.1/24", &relay, &i, "10.77.0.2/24");
    let mut m = Mcrd::spawn(&relay, &dir, "mcrd", &cfg, &["--user", &user.0]);
    m.wait_log("mcrd ready", Duration::from_secs(10));
    let pid = m.pid();
    let uid = user.id("-u");
    let gid = user.id("-g");
    for key in ["Uid", "Gid"] {
        let want = if key == "Uid" { uid } else { gid };
        let ids: Vec<u32> = status_field(pid, key)
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(ids, vec![want; 4], "{key} of mcrd");
    }
    assert_eq!(status_field(pid, "Groups"), "");
    assert_eq!(
        caps_of(pid, "CapEff"),
        NET_RAW_MASK,
        "effective capabilities"
    );
    assert_eq!(
        caps_of(pid, "CapPrm"),
        NET_RAW_MASK,
        "permitted capabilities"
    );
    assert_eq!(caps_of(pid, "CapAmb"), 0);
    assert_eq!(caps_of(pid, "CapBnd"), NET_RAW_MASK, "bounding set");
    // Every thread (the engines too) runs with the same reduced set.
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let tid: u32 = task.unwrap().file_name().to_str().unwrap().parse().unwrap();
        let st = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).unwrap();
        let eff = st
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .unwrap()
            .trim()
            .to_string();
        assert_eq!(
            u64::from_str_radix(&eff, 16).unwrap(),
            NET_RAW_MASK,
            "thread {tid}"
        );
    }

    // Without CAP_BPF the kernel fast path is off, said once at INFO (this
    // is the least-privilege set-up working as configured)...
    let fast = &m.ctl_json(&["status"])["kernel_fast_path"];
    assert_eq!(fast["enabled"], false, "{fast:#}");
    assert!(
        fast["error"].as_str().unwrap_or("").contains("CAP_BPF"),
        "{fast:#}"
    );
    let log = m.log_text();
    assert_eq!(log.matches("kernel fast path off").count(), 1, "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("kernel fast path off") && l.contains("INFO")),
        "{log}"
    );
    // ...and the engines forward...
    let l = Listener::start(&sink, &dir, &s, "239.2.2.1", 6000, &["--idle-timeout", "1"]);
    generate(
        &src,
        &g,
        "239.1.1.1",
        5000,
        &["--rate", "2000", "--count", "2000"],
    );
    assert_exact(&l.finish(), 2000);
    // ...and a rule whose interface appears later activates.
    veth(
        &src,
        &format!("{tag}h"),
        "10.79.0.1/24",
        &relay,
        &late_i,
        "10.79.0.2/24",
    );
    m.wait_log("rule active rule=later", Duration::from_secs(5));
    let l = Listener::start(&sink, &dir, &s, "239.2.2.2", 6000, &["--idle-timeout", "1"]);
    generate(
        &src,
        &format!("{tag}h"),
        "239.1.1.2",
        5000,
        &["--rate", "2000", "--count", "2000"],
    );
    assert_exact(&l.finish(), 2000);
    assert!(
        !m.log_text().contains("opening capture socket"),
        "{}",
        m.log_text()
    );
}

#[test]
fn non_root_without_net_raw_fails_clearly_and_with_it_forwards() {
    let user = TempUser::new();
    let t = Topo::new(1);
    // The unprivileged user writes its socket and log in the test directory.
    std::fs::set_permissions(&t.dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cfg = format!(
        "{{ rules: [ {} ] }}",
        rule(
            "a",
            &t.i(),
            "239.1.1.1",
            5000,
            &[output(&t.o(0), "239.2.2.1", 6000)]
        )
    );
    let reuid = format!("--reuid={}", user.0);
    let regid = format!("--regid={}", user.id("-g"));
    let plain = ["setpriv", reuid.as_str(), regid.as_str(), "--clear-groups"];
    let mut m = Mcrd::spawn_as(&t.relay, &t.dir, "noraw", &cfg, &plain, &[]);
    assert_eq!(
        m.wait_exit(Duration::from_secs(10)),
        Some(1),
        "{}",
        m.log_text()
    );
    let log = m.log_text();
    assert!(log.contains("mcrd needs CAP_NET_RAW"), "{log}");
    assert!(log.contains(&format!("on interface '{}'", t.i())), "{log}");
    assert!(log.contains("docs/deployment.md#capabilities"), "{log}");
    assert!(!log.contains("panicked"));
    assert_eq!(log.matches("Error:").count(), 1, "one clear error: {log}");

    let with_raw = [
        "setpriv",
        reuid.as_str(),
        regid.as_str(),
        "--clear-groups",
        "--inh-caps=+net_raw",
        "--ambient-caps=+net_raw",
    ];
    let mut m = Mcrd::spawn_as(&t.relay, &t.dir, "raw", &cfg, &with_raw, &[]);
    m.wait_log("mcrd ready", Duration::from_secs(10));
    assert_eq!(
        status_field(m.pid(), "Uid")
            .split_whitespace()
            .next()
            .unwrap(),
        user.id("-u").to_string()
    );
    let l = t.listen(0, "239.2.2.1", 6000, &["--idle-timeout", "1"]);
    t.send("239.1.1.1", 5000, &["--rate", "2000", "--count", "2000"]);
    assert_exact(&l.finish(), 2000);
}
