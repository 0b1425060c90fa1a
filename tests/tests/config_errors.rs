//! Bad config files: `mcrd check-config` and `mcrd supervisor` both exit 2
//! with a message naming the file, the line and the key, and never panic.

use mcr_tests::*;

/// (what is wrong, file text, text the message must contain, line).
const CASES: &[(&str, &str, &str, usize)] = &[
    (
        "syntax error",
        "{\n  rules: [\n    { name: \"a\" \n  ]\n}\n",
        "",
        4,
    ),
    (
        "unknown key with suggestion",
        "{\n  rules: [ { input: { interface: \"a\", group: \"239.1.1.1\", port: 1 },\n    outptus: [] } ]\n}\n",
        "outputs",
        3,
    ),
    (
        "port 0",
        "{ rules: [ { input: { interface: \"a\", group: \"239.1.1.1\", port: 5000 },\n  outputs: [ { interface: \"b\", group: \"239.1.1.2\",\n  port: 0 } ] } ] }\n",
        "rules[0].outputs[0].port",
        3,
    ),
    (
        "port out of range",
        "{ rules: [ { input: { interface: \"a\", group: \"239.1.1.1\",\n port: 70000 }, outputs: [] } ] }\n",
        "port",
        2,
    ),
    (
        "malformed address",
        "{ rules: [ { input: { interface: \"a\",\n group: \"239.1.1\", port: 5000 }, outputs: [ { interface: \"b\", group: \"239.1.1.2\", port: 1 } ] } ] }\n",
        "group",
        2,
    ),
    (
        "ttl 0",
        "{ rules: [ { input: { interface: \"a\", group: \"239.1.1.1\", port: 5000 },\n outputs: [ { interface: \"b\", group: \"239.1.1.2\", port: 1,\n ttl: 0 } ] } ] }\n",
        "rules[0].outputs[0].ttl",
        3,
    ),
    (
        "output equals its input",
        "{ rules: [ { input: { interface: \"a\", group: \"239.1.1.1\", port: 5000 },\n outputs: [\n { interface: \"a\", group: \"239.1.1.1\", port: 5000 } ] } ] }\n",
        "rules[0].outputs[0]",
        3,
    ),
    (
        "duplicate names",
        "{ rules: [\n { name: \"x\", input: { interface: \"a\", group: \"239.1.1.1\", port: 5000 }, outputs: [ { interface: \"b\", group: \"239.1.1.2\", port: 1 } ] },\n { name: \"x\", input: { interface: \"a\", group: \"239.1.1.3\", port: 5000 }, outputs: [ { interface: \"b\", group: \"239.1.1.2\", port: 1 } ] } ] }\n",
        "rules[1].name",
        3,
    ),
    (
        "duplicate inputs",
        "{ rules: [\n { input: { interface: \"a\", group: \"239.1.1.1\", port: 5000 }, outputs: [ { interface: \"b\", group: \"239.1.1.2\", port: 1 } ] },\n { input: { interface: \"a\", group: \"239.1.1.1\", port: 5000 }, outputs: [ { interface: \"c\", group: \"239.1.1.2\", port: 1 } ] } ] }\n",
        "rules[1].input",
        3,
    ),
    (
        "wrong type",
        "{\n rules: [ { input: { interface: \"a\", group: \"239.1.1.1\", port: \"abc\" }, outputs: [] } ] }\n",
        "port",
        2,
    ),
    (
        "unknown top-level key",
        "{\n  rulez: []\n}\n",
        "rules",
        2,
    ),
    (
        "ipv6 address",
        "{ rules: [ { input: { interface: \"a\",\n group: \"ff05::1\", port: 5000 }, outputs: [ { interface: \"b\", group: \"239.1.1.2\", port: 1 } ] } ] }\n",
        "IPv6",
        2,
    ),
    (
        "interface name too long",
        "{ rules: [ { input: {\n interface: \"abcdefghijklmnopq\", group: \"239.1.1.1\", port: 5000 }, outputs: [ { interface: \"b\", group: \"239.1.1.2\", port: 1 } ] } ] }\n",
        "rules[0].input.interface",
        2,
    ),
    (
        "renamed protocol key",
        "{ pim: {\n hello_interval_secs: 30 } }\n",
        "did you mean 'hello_period'?",
        2,
    ),
    (
        "rpf_provider neither keyword nor path",
        "{ control_plane: {\n rpf_provider: \"babel\" } }\n",
        "\"disabled\" (default), \"kernel\", \"static\" or the absolute path",
        2,
    ),
    (
        "multicast_ttl 0",
        "{\n multicast_ttl: 0 }\n",
        "multicast_ttl",
        2,
    ),
    (
        "igmp query response not shorter than query interval",
        "{ igmp: { query_interval: 10,\n query_response_interval: 10 } }\n",
        "igmp.query_response_interval",
        2,
    ),
];

#[test]
fn bad_configs_exit_2_naming_line_and_key() {
    let dir = TempDir::new(&unique_tag());
    let mcrd = bin("mcrd");
    for (i, (what, text, needle, line)) in CASES.iter().enumerate() {
        let file = dir.file(&format!("bad{i}.json5"), text);
        let fname = file.display().to_string();
        for args in [
            vec!["check-config".to_string(), fname.clone()],
            vec![
                "supervisor".into(),
                "--config".into(),
                fname.clone(),
                "--control-socket-path".into(),
                dir.path("s.sock").display().to_string(),
            ],
        ] {
            let out = std::process::Command::new(&mcrd)
                .args(&args)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{what} ({args:?}): {err}");
            assert!(!err.contains("panicked"), "{what}: {err}");
            assert!(
                err.contains(&format!("{fname}:{line}:")),
                "{what}: want {fname}:{line}: in {err}"
            );
            assert!(err.contains(needle), "{what}: want {needle:?} in {err}");
        }
    }
}

#[test]
fn good_config_passes_check() {
    let dir = TempDir::new(&unique_tag());
    let file = dir.file(
        "good.json5",
        r#"{
  // Interfaces must exist in the namespace where MCR runs
  rules: [
    {
      name: "namespace-forward",
      input: { interface: "veth-ns", group: "239.1.1.1", port: 5001 },
      outputs: [
        { interface: "eth0", group: "239.1.1.1", port: 5001 }
      ]
    }
  ],
  control_plane: {
    rpf_provider: "/run/routing/babel.sock",
    external_neighbors_enabled: true,
    event_buffer_size: 512
  }
}"#,
    );
    let out = std::process::Command::new(bin("mcrd"))
        .args(["check-config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The seed system's config (every key of its schema), as its users wrote
/// it, passes `mcrd check-config`. The file is the repository's copy of
/// `../shared/compat/seed-system.json5`.
#[test]
fn seed_system_config_passes_check() {
    let fixture = seed_fixture();
    let out = std::process::Command::new(bin("mcrd"))
        .arg("check-config")
        .arg(&fixture)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("valid (2 rules)"),
        "{out:?}"
    );
}

/// A pinned CPU that runs no engine passes `check-config` (CPUs are not
/// looked at there) but stops `mcrd supervisor` at start, like `cores`.
#[test]
fn pinning_to_a_cpu_without_an_engine_stops_the_daemon() {
    let dir = TempDir::new(&unique_tag());
    let file = dir.file("pin.json5", "{ pinning: { \"eth0\": [4095] } }");
    let check = std::process::Command::new(bin("mcrd"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let out = std::process::Command::new(bin("mcrd"))
        .args(["supervisor", "--config"])
        .arg(&file)
        .arg("--control-socket-path")
        .arg(dir.path("s.sock"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("pinning.eth0: CPU 4095 runs no data-plane engine"),
        "{err}"
    );
}
