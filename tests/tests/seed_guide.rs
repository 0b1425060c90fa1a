//! The commands of the user's namespace deployment guide, run as shown
//! (with namespace names made unique per test run).

use mcr_tests::*;
use std::time::Duration;

#[test]
fn socket_inside_the_namespace_path_works_as_the_guide_shows() {
    let tag = unique_tag();
    let ns = Netns::new(format!("{tag}red"));
    let dir = TempDir::new(&tag);
    let sock = format!("/run/netns/{}/mcrd.sock", ns.name);
    let mut m = Mcrd::spawn(
        &ns,
        &dir,
        "mcrd",
        "{ rules: [] }",
        &["--control-socket-path", &sock],
    );
    m.wait_log("mcrd ready", Duration::from_secs(10));
    // The guide's address for the socket reaches this instance.
    let st = mcrctl(std::path::Path::new(&sock), &["--json", "status"]);
    assert_eq!(st.code, 0, "{st:?}");
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["pid"], m.pid());
    assert_eq!(v["namespace"]["name"], ns.name.as_str());
    let (_, status) = m.stop();
    assert!(status.success());
    // The directory mcrd made for the socket goes with it.
    let made = std::path::PathBuf::from(format!("/run/mcr/netns/{}", ns.name));
    assert!(!made.exists(), "{} left behind", made.display());
}

#[test]
fn per_namespace_default_socket_and_host_access() {
    let tag = unique_tag();
    let ns = Netns::new(format!("{tag}blu"));
    let dir = TempDir::new(&tag);
    let sock = format!("/run/mcr/mcrd-{}.sock", ns.name);
    // `mcrd supervisor --control-socket-path /run/mcr/mcrd-NAME.sock --config FILE`
    let mut m = Mcrd::spawn(
        &ns,
        &dir,
        "mcrd",
        "{ rules: [] }",
        &["--control-socket-path", &sock],
    );
    m.wait_log("mcrd ready", Duration::from_secs(10));
    // `mcrctl --socket /run/mcr/mcrd-NAME.sock status` from the host...
    let host = mcrctl(std::path::Path::new(&sock), &["status"]);
    assert_eq!(host.code, 0, "{host:?}");
    assert!(
        host.stdout
            .contains(&format!("pid:            {}", m.pid())),
        "{}",
        host.stdout
    );
    // ...and `ip netns exec NAME mcrctl status` (default path) reach it.
    let out = ns.exec(&[bin("mcrctl").to_str().unwrap(), "status"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("pid:            {}", m.pid())));
    let (_, status) = m.stop();
    assert!(status.success());
    assert!(
        !std::path::Path::new(&sock).exists(),
        "socket removed on exit"
    );
}

#[test]
fn guide_listen_command_reports_on_interrupt() {
    let tag = unique_tag();
    let a = Netns::new(format!("{tag}a"));
    let b = Netns::new(format!("{tag}b"));
    veth(
        &a,
        &format!("{tag}x"),
        "10.88.0.1/24",
        &b,
        &format!("{tag}y"),
        "10.88.0.2/24",
    );
    // `mcrd listen --interface eth0 --group 239.1.1.1` (default port 5001),
    // stopped with Ctrl-C, prints what it counted.
    let child = b
        .command(&bin("mcrd"))
        .args([
            "listen",
            "--interface",
            &format!("{tag}y"),
            "--group",
            "239.1.1.1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    generate(
        &a,
        &format!("{tag}x"),
        "239.1.1.1",
        5001,
        &["--rate", "1000", "--count", "100"],
    );
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("received 100 packets"), "{text}");
}

#[test]
fn missing_interface_message_matches_the_guide() {
    let tag = unique_tag();
    let ns = Netns::new(format!("{tag}g"));
    let dir = TempDir::new(&tag);
    let cfg = r#"{ rules: [ { name: "namespace-forward",
        input: { interface: "veth-ns", group: "239.1.1.1", port: 5001 },
        outputs: [ { interface: "eth0", group: "239.1.1.1", port: 5001 } ] } ] }"#;
    let m = Mcrd::start(&ns, &dir, cfg);
    assert!(
        m.log_text().contains("Interface 'veth-ns' not found"),
        "{}",
        m.log_text()
    );
    let list = m.ctl(&["list"]);
    assert!(
        list.stdout
            .contains("inactive: Interface 'veth-ns' not found"),
        "{}",
        list.stdout
    );
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let tag = unique_tag();
    let ns = Netns::new(format!("{tag}j"));
    let dir = TempDir::new(&tag);
    let cfg = dir.file("c.json5", r#"{ rules: [ { input: { interface: "nope0", group: "239.1.1.1", port: 5000 }, outputs: [ { interface: "nope1", group: "239.1.1.2", port: 5000 } ] } ] }"#);
    let sock = dir.path("s.sock");
    let child = ns
        .command(&bin("mcrd"))
        .args(["--log-format", "json", "supervisor", "--config"])
        .arg(&cfg)
        .arg("--control-socket-path")
        .arg(&sock)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !sock.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "{text}");
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
    }
    assert!(text.contains("Interface 'nope0' not found"), "{text}");
}

/// A running mcrd started on the seed system's config (every protocol
/// section, `pinning`, `multicast_ttl`) writes it back with `mcrctl config
/// save` as it read it: the saved file passes `check-config` and parses to
/// the same configuration, section by section. `status` says the protocols
/// are configured; of them only PIM runs (neighbours and DR election), and
/// the seed's external RPF provider socket is absent, so it is down.
#[test]
fn seed_system_config_runs_and_saves_as_read() {
    let tag = unique_tag();
    let ns = Netns::new(format!("{tag}sd"));
    let dir = TempDir::new(&tag);
    let fixture = seed_fixture();
    let text = std::fs::read_to_string(&fixture).unwrap();
    let m = Mcrd::start(&ns, &dir, &text);
    assert!(
        m.log_text()
            .contains("'pinning' is validated but not acted on yet"),
        "{}",
        m.log_text()
    );
    let st = m.ctl_json(&["status"]);
    // The seed's interfaces (eth0, eth1, eth2) do not exist in this
    // namespace: IGMP and PIM are configured but run on no interface, so
    // neither counts as running. MSDP runs on TCP, not on interfaces: its
    // instance runs (and retries its peers) from the start.
    for (p, running) in [("igmp", false), ("pim", false), ("msdp", true)] {
        assert_eq!(
            st["protocols"][p],
            serde_json::json!({ "configured": true, "running": running }),
            "{p}: {st}"
        );
    }
    assert_eq!(st["rpf_provider"]["state"], "down", "{st}");
    let shown = m.ctl(&["status"]).stdout;
    assert!(shown.contains("igmp configured, not running"), "{shown}");

    // Saved over its own config file (what a client may always write).
    let saved = dir.path("mcrd.json5");
    m.ctl_json(&["config", "save"]);
    let out = std::process::Command::new(bin("mcrd"))
        .arg("check-config")
        .arg(&saved)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let original = mcr_config::load_file(&fixture).unwrap();
    let back = mcr_config::load_file(&saved).unwrap();
    assert_eq!(back.pim, original.pim);
    assert_eq!(back.igmp, original.igmp);
    assert_eq!(back.msdp, original.msdp);
    assert_eq!(back.control_plane, original.control_plane);
    assert_eq!(back.pinning, original.pinning);
    assert_eq!(back.multicast_ttl, original.multicast_ttl);
    assert_eq!(back, original);
    let saved_text = std::fs::read_to_string(&saved).unwrap();
    for key in [
        "querier_interfaces",
        "static_rp",
        "hello_period",
        "keepalive_interval",
        "default_peer",
        "multicast_ttl",
        "pinning",
    ] {
        assert!(saved_text.contains(key), "{key} missing:\n{saved_text}");
    }
}
