//! Whole-crate tests: parsing, every rejection with its path and line,
//! round trips and never-panic properties.

use crate::*;
use proptest::prelude::*;

const GUIDE_EXAMPLE: &str = r#"{
  // Interfaces must exist in the namespace where MCR runs
  rules: [
    { name: "namespace-forward",
      input: { interface: "veth-ns", group: "239.1.1.1", port: 5001 },
      outputs: [ { interface: "eth0", group: "239.1.1.1", port: 5001 } ] }
  ],
  control_plane: { rpf_provider: "/run/routing/babel.sock", external_neighbors_enabled: true, event_buffer_size: 512 }
}"#;

const FULL: &str = r#"{
  rules: [
    {
      name: "video",
      input: { interface: "eth0", group: "239.1.1.1", port: 5001, source: "10.0.0.5" },
      outputs: [
        { interface: "eth1", group: "239.2.2.2", port: 6001, ttl: 8 },
        { interface: "eth2", group: "192.168.1.10", port: 6002 },
      ],
    },
    {
      input: { interface: "eth0", group: "239.1.1.2", port: 5002 },
      outputs: [ { interface: "eth1", group: "239.1.1.2", port: 5002 } ],
    },
  ],
  cores: [0, 1],
  user: "mcr",
  control_socket_group: "mcr",
  igmp: { enabled: true, interfaces: ["eth1", "eth2"], version: 2, query_interval_secs: 60,
          query_response_interval_secs: 5, robustness: 3 },
  pim: { enabled: true, interfaces: [ { name: "eth1" }, { name: "eth2", dr_priority: 10 } ],
         rp: [ { address: "10.0.0.1", group_range: "239.0.0.0/8" }, { address: "10.0.0.2" } ],
         hello_interval_secs: 10, dr_priority: 5 },
  msdp: { enabled: true, local_address: "10.0.0.9",
          peers: [ { address: "10.0.0.7", mesh_group: "m1", description: "peer \"one\"" } ],
          keepalive_secs: 30, hold_time_secs: 90 },
  control_plane: { rpf_provider: "/run/rpf.sock", external_neighbors_enabled: true, event_buffer_size: 1024 },
}"#;

/// A valid rule, one line per key, for splicing bad values into.
fn rule_text(
    name: &str,
    iface: &str,
    group: &str,
    port: &str,
    extra_in: &str,
    outputs: &str,
) -> String {
    format!(
        "    {{\n      name: {name},\n      input: {{\n        interface: {iface},\n        group: {group},\n        port: {port},{extra_in}\n      }},\n      outputs: {outputs},\n    }},\n"
    )
}

fn out1() -> String {
    "[\n        { interface: \"eth1\", group: \"239.9.9.9\", port: 7000 },\n      ]".to_string()
}

/// Parses `text` expecting failure; returns the diagnostics.
fn errs(text: &str) -> Vec<Diagnostic> {
    match parse_str(text, "test.json5") {
        Ok(c) => panic!("expected an error, parsed {c:?}\n{text}"),
        Err(e) => e.diagnostics,
    }
}

/// Asserts exactly one diagnostic has `path`, is on `line`, and its message
/// contains every needle. Returns it.
#[track_caller]
fn expect_diag(text: &str, path: &str, line: usize, needles: &[&str]) -> Diagnostic {
    let diags = errs(text);
    let Some(d) = diags.iter().find(|d| d.path == path) else {
        panic!(
            "no diagnostic at {path}; got:\n{}",
            ConfigError::new(diags.clone())
        );
    };
    let shown = d.to_string();
    assert_eq!(d.file.as_deref(), Some("test.json5"), "{shown}");
    assert_eq!(d.line, Some(line), "wrong line: {shown}\n{text}");
    assert!(d.column.is_some(), "{shown}");
    assert!(shown.contains(path), "{shown}");
    for n in needles {
        assert!(shown.contains(n), "missing {n:?} in: {shown}");
    }
    d.clone()
}

fn wrap_rules(rules: &[String]) -> String {
    format!("{{\n  rules: [\n{}  ],\n}}\n", rules.concat())
}

fn good_rule(name: &str, port: u16) -> String {
    rule_text(
        &format!("\"{name}\""),
        "\"eth0\"",
        "\"239.1.1.1\"",
        &port.to_string(),
        "",
        &out1(),
    )
}

// Line layout of rule k (0-based) built by rule_text inside wrap_rules:
// rule starts at line 3 + 11k; name +1, input +2, interface +3, group +4,
// port +5, (extra_in on the same line as port), outputs +7, first output +8.
fn line_of(rule: usize, offset: usize) -> usize {
    3 + 11 * rule + offset
}

#[test]
fn guide_example_parses() {
    let c = parse_str(GUIDE_EXAMPLE, "red.json5").unwrap();
    assert_eq!(c.rules.len(), 1);
    assert_eq!(c.rules[0].id().as_str(), "namespace-forward");
    assert_eq!(c.rules[0].input.group, Ipv4Addr::new(239, 1, 1, 1));
    assert_eq!(
        c.control_plane.rpf_provider.as_deref(),
        Some("/run/routing/babel.sock")
    );
    assert!(c.control_plane.external_neighbors_enabled);
    assert_eq!(c.control_plane.event_buffer_size, 512);
    assert_eq!(c.igmp, IgmpConfig::default());
}

#[test]
fn empty_object_is_default() {
    let c = parse_str("{}", "x").unwrap();
    assert_eq!(c, Config::default());
    assert!(c.rules.is_empty() && c.cores.is_none());
    assert_eq!(c.igmp.version, 3);
    assert_eq!(c.igmp.query_interval_secs, 125);
    assert_eq!(c.igmp.query_response_interval_secs, 10);
    assert_eq!(c.igmp.robustness, 2);
    assert_eq!(c.pim.hello_interval_secs, 30);
    assert_eq!(c.pim.dr_priority, 1);
    assert_eq!(c.msdp.keepalive_secs, 60);
    assert_eq!(c.msdp.hold_time_secs, 75);
    assert_eq!(c.control_plane.event_buffer_size, 256);
    assert!(c.validate().is_ok());
}

#[test]
fn full_config_parses_and_round_trips() {
    let c = parse_str(FULL, "full.json5").unwrap();
    assert_eq!(c.pim.rp[1].group_range, "224.0.0.0/4");
    assert_eq!(c.rules[0].outputs[0].effective_ttl(), 8);
    assert_eq!(c.rules[0].outputs[1].effective_ttl(), 64);
    assert_eq!(c.rules[1].outputs[0].effective_ttl(), 1);
    assert_eq!(c.msdp.peers[0].description.as_deref(), Some("peer \"one\""));
    let text = c.to_json5();
    let back = parse_str(&text, "saved.json5").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, c);
    // Defaults round-trip too.
    let d = Config::default();
    assert_eq!(parse_str(&d.to_json5(), "d").unwrap(), d);
}

#[test]
fn rule_ids() {
    let c = parse_str(FULL, "full.json5").unwrap();
    assert_eq!(c.rules[0].id().as_str(), "video");
    // eth0|239.1.1.2|5002|* hashed with FNV-1a 64. Hard-coded on purpose.
    assert_eq!(c.rules[1].id().as_str(), "r-10c6d63c595b6f17");
    assert_eq!(c.rules[1].id().to_string(), c.rules[1].id().as_str());
}

#[test]
fn unknown_key_suggests() {
    let text = "{\n  rules: [\n    { input: { interface: \"a\", group: \"239.1.1.1\", port: 1 },\n      outptus: [] },\n  ],\n}";
    let d = expect_diag(
        text,
        "rules[0].outptus",
        4,
        &["unknown key 'outptus' in rules[0]; did you mean 'outputs'?"],
    );
    assert_eq!(d.column, Some(7));
    expect_diag(
        "{\n  igmp: { enabeld: true } }",
        "igmp.enabeld",
        2,
        &["did you mean 'enabled'"],
    );
    expect_diag(
        "{\n  eventBufferSize: 3 }",
        "eventBufferSize",
        2,
        &["valid keys are: rules, cores"],
    );
    expect_diag(
        "{\n  control_plane: {\n    eventBufferSize: 3 } }",
        "control_plane.eventBufferSize",
        3,
        &["did you mean 'event_buffer_size'"],
    );
    expect_diag(
        "{\n\n  zzz: 1 }",
        "zzz",
        3,
        &["valid keys are: rules, cores, user"],
    );
}

#[test]
fn port_zero_input_and_output() {
    let r = rule_text(
        "\"a\"",
        "\"eth0\"",
        "\"239.1.1.1\"",
        "0",
        "",
        "[\n        { interface: \"eth1\", group: \"239.9.9.9\", port: 0 },\n      ]",
    );
    let text = wrap_rules(&[good_rule("x", 1), r]);
    expect_diag(
        &text,
        "rules[1].input.port",
        line_of(1, 5),
        &["port 0 is not allowed; use a port from 1 to 65535"],
    );
    expect_diag(
        &text,
        "rules[1].outputs[0].port",
        line_of(1, 8),
        &["port 0 is not allowed"],
    );
    let d = expect_diag(&text, "rules[1].outputs[0].port", line_of(1, 8), &[]);
    assert_eq!(
        d.to_string(),
        format!("test.json5:{}:56: rules[1].outputs[0].port: port 0 is not allowed; use a port from 1 to 65535", line_of(1, 8))
    );
}

#[test]
fn collects_all_semantic_errors() {
    let r = rule_text("\"\"", "\"\"", "\"0.0.0.0\"", "0", "", "[]");
    let text = wrap_rules(&[r]);
    let diags = errs(&text);
    let paths: Vec<&str> = diags.iter().map(|d| d.path.as_str()).collect();
    for p in [
        "rules[0].name",
        "rules[0].input.interface",
        "rules[0].input.group",
        "rules[0].input.port",
        "rules[0].outputs",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    assert!(ConfigError::new(diags).to_string().lines().count() >= 5);
}

#[test]
fn duplicate_inputs_and_names() {
    let text = wrap_rules(&[good_rule("a", 1), good_rule("b", 2), good_rule("a", 1)]);
    expect_diag(
        &text,
        "rules[2].input",
        line_of(2, 2),
        &["duplicate input", "rules[0]"],
    );
    expect_diag(
        &text,
        "rules[2].name",
        line_of(2, 1),
        &["duplicate rule name 'a'", "rules[0]"],
    );
    // Same input with a different source is not a duplicate.
    let r = rule_text(
        "\"c\"",
        "\"eth0\"",
        "\"239.1.1.1\"",
        "1",
        " source: \"10.1.1.1\",",
        &out1(),
    );
    assert!(parse_str(&wrap_rules(&[good_rule("a", 1), r]), "x").is_ok());
}

#[test]
fn empty_and_generated_names() {
    let r = rule_text("\"  \"", "\"eth0\"", "\"239.1.1.1\"", "1", "", &out1());
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].name",
        line_of(0, 1),
        &["rule name is empty"],
    );
    let r = rule_text(
        "\"r-0123456789abcdef\"",
        "\"eth0\"",
        "\"239.1.1.1\"",
        "1",
        "",
        &out1(),
    );
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].name",
        line_of(0, 1),
        &["generated rule id"],
    );
}

#[test]
fn output_equal_to_input() {
    let outs = "[\n        { interface: \"eth0\", group: \"239.1.1.1\", port: 1 },\n      ]";
    let r = rule_text("\"a\"", "\"eth0\"", "\"239.1.1.1\"", "1", "", outs);
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].outputs[0]",
        line_of(0, 8),
        &["own input", "loop"],
    );
}

#[test]
fn duplicate_output() {
    let outs = "[\n        { interface: \"eth1\", group: \"239.1.1.1\", port: 1 },\n        { interface: \"eth1\", group: \"239.1.1.1\", port: 1 },\n      ]";
    let r = rule_text("\"a\"", "\"eth0\"", "\"239.1.1.1\"", "1", "", outs);
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].outputs[1]",
        line_of(0, 9),
        &["duplicate output", "outputs[0]"],
    );
}

#[test]
fn ttl_zero() {
    let outs =
        "[\n        { interface: \"eth1\", group: \"239.1.1.1\", port: 1, ttl: 0 },\n      ]";
    let r = rule_text("\"a\"", "\"eth0\"", "\"239.1.1.1\"", "1", "", outs);
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].outputs[0].ttl",
        line_of(0, 8),
        &["ttl 0", "1 to 255"],
    );
}

#[test]
fn malformed_addresses() {
    let r = rule_text("\"a\"", "\"eth0\"", "\"239.1.1\"", "1", "", &out1());
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].input.group",
        line_of(0, 4),
        &["'239.1.1' has 3 parts", "e.g. 239.1.1.1"],
    );
    let r = rule_text("\"a\"", "\"eth0\"", "\"300.1.1.1\"", "1", "", &out1());
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].input.group",
        line_of(0, 4),
        &["300 is larger than 255", "e.g. 239.1.1.1"],
    );
    let r = rule_text("\"a\"", "\"eth0\"", "\"ff05::1\"", "1", "", &out1());
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].input.group",
        line_of(0, 4),
        &["IPv6 is not supported yet"],
    );
    let r = rule_text("\"a\"", "\"eth0\"", "239", "1", "", &out1());
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].input.group",
        line_of(0, 4),
        &["IPv4 address"],
    );
    let r = rule_text(
        "\"a\"",
        "\"eth0\"",
        "\"239.1.1.1\"",
        "1",
        " source: \"10.0.0\",",
        &out1(),
    );
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].input.source",
        line_of(0, 5),
        &["3 parts", "e.g. 10.0.0.1"],
    );
}

#[test]
fn no_outputs() {
    let r = rule_text("\"a\"", "\"eth0\"", "\"239.1.1.1\"", "1", "", "[]");
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].outputs",
        line_of(0, 7),
        &["rule has no outputs"],
    );
    // Missing entirely: points at the rule.
    let text = "{\n  rules: [\n    { input: { interface: \"a\", group: \"239.1.1.1\", port: 1 } },\n  ],\n}";
    expect_diag(text, "rules[0].outputs", 3, &["rule has no outputs"]);
}

#[test]
fn interface_names() {
    let r = rule_text("\"a\"", "\"\"", "\"239.1.1.1\"", "1", "", &out1());
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].input.interface",
        line_of(0, 3),
        &["interface name is empty"],
    );
    let r = rule_text(
        "\"a\"",
        "\"abcdefghijklmnop\"",
        "\"239.1.1.1\"",
        "1",
        "",
        &out1(),
    );
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].input.interface",
        line_of(0, 3),
        &["16 bytes", "at most 15"],
    );
    let r = rule_text(
        "\"a\"",
        "\"abcdefghijklmno\"",
        "\"239.1.1.1\"",
        "1",
        "",
        &out1(),
    );
    assert!(parse_str(&wrap_rules(&[r]), "x").is_ok());
    let outs = "[\n        { interface: \"eth/1\", group: \"239.1.1.1\", port: 1 },\n      ]";
    let r = rule_text("\"a\"", "\"eth0\"", "\"239.1.1.1\"", "1", "", outs);
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].outputs[0].interface",
        line_of(0, 8),
        &["'/'"],
    );
}

#[test]
fn multicast_source() {
    let r = rule_text(
        "\"a\"",
        "\"eth0\"",
        "\"239.1.1.1\"",
        "1",
        " source: \"239.5.5.5\",",
        &out1(),
    );
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].input.source",
        line_of(0, 5),
        &["multicast", "must be a unicast"],
    );
}

#[test]
fn bad_input_groups() {
    for g in ["0.0.0.0", "255.255.255.255"] {
        let r = rule_text("\"a\"", "\"eth0\"", &format!("\"{g}\""), "1", "", &out1());
        expect_diag(
            &wrap_rules(&[r]),
            "rules[0].input.group",
            line_of(0, 4),
            &[g, "cannot be captured"],
        );
    }
}

#[test]
fn wrong_types() {
    let r = rule_text("\"a\"", "\"eth0\"", "\"239.1.1.1\"", "\"abc\"", "", &out1());
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].input.port",
        line_of(0, 5),
        &["expected a number", "1 to 65535"],
    );
    let r = rule_text("\"a\"", "\"eth0\"", "\"239.1.1.1\"", "70000", "", &out1());
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].input.port",
        line_of(0, 5),
        &["70000 is out of range", "1 to 65535"],
    );
    let r = rule_text("\"a\"", "\"eth0\"", "\"239.1.1.1\"", "-1", "", &out1());
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].input.port",
        line_of(0, 5),
        &["-1 is out of range"],
    );
    let r = rule_text("\"a\"", "5", "\"239.1.1.1\"", "1", "", &out1());
    expect_diag(
        &wrap_rules(&[r]),
        "rules[0].input.interface",
        line_of(0, 3),
        &["expected a quoted string"],
    );
    expect_diag(
        "{\n  igmp: {\n    enabled: 'yes' } }",
        "igmp.enabled",
        3,
        &["true or false"],
    );
    expect_diag("{\n  rules: {} }", "rules", 2, &["expected a list"]);
    expect_diag("{\n  cores: [0, 'x'] }", "cores[1]", 2, &["CPU numbers"]);
}

#[test]
fn missing_and_duplicate_keys() {
    let text = "{\n  rules: [\n    { input: { interface: \"a\", group: \"239.1.1.1\" },\n      outputs: [] } ] }";
    expect_diag(
        text,
        "rules[0].input",
        3,
        &["missing required key 'port'", "e.g. port: 5001"],
    );
    let text = "{\n  rules: [\n    { input: { interface: \"a\", port: 1, port: 2 } } ] }";
    expect_diag(
        text,
        "rules[0].input",
        3,
        &["key 'port' appears more than once"],
    );
}

#[test]
fn cores() {
    expect_diag(
        "{\n  cores: [0, 1,\n    1] }",
        "cores[2]",
        3,
        &["CPU 1 is listed twice", "cores[1]"],
    );
    expect_diag("{\n  cores: [] }", "cores", 2, &["remove 'cores'"]);
}

#[test]
fn igmp_ranges() {
    expect_diag(
        "{\n  igmp: {\n    version: 4 } }",
        "igmp.version",
        3,
        &["IGMP version 4", "use 2 or 3"],
    );
    expect_diag(
        "{\n  igmp: {\n    robustness: 0 } }",
        "igmp.robustness",
        3,
        &["1 to 7"],
    );
    expect_diag(
        "{\n  igmp: { version: 2,\n    query_response_interval_secs: 30 } }",
        "igmp.query_response_interval_secs",
        3,
        &["IGMPv2 allows 1 to 25"],
    );
    expect_diag(
        "{\n  igmp: { query_interval_secs: 10,\n    query_response_interval_secs: 10 } }",
        "igmp.query_response_interval_secs",
        3,
        &["shorter than the query interval"],
    );
    expect_diag(
        "{ igmp: { interfaces: ['a',\n 'a'] } }",
        "igmp.interfaces[1]",
        2,
        &["listed twice"],
    );
}

#[test]
fn event_buffer_size_range() {
    for bad in ["15", "1048577", "0"] {
        let text = format!("{{\n  control_plane: {{\n    event_buffer_size: {bad} }} }}");
        expect_diag(
            &text,
            "control_plane.event_buffer_size",
            3,
            &[bad, "16 to 1048576"],
        );
    }
    for good in ["16", "1048576"] {
        assert!(parse_str(
            &format!("{{ control_plane: {{ event_buffer_size: {good} }} }}"),
            "x"
        )
        .is_ok());
    }
    expect_diag(
        "{\n  control_plane: {\n    rpf_provider: 'rel.sock' } }",
        "control_plane.rpf_provider",
        3,
        &["absolute"],
    );
}

#[test]
fn pim_rp() {
    let text = "{\n  pim: {\n    rp: [\n      { address: \"10.0.0.1\", group_range: \"239.1.0.0/8\" },\n      { address: \"10.0.0.1\", group_range: \"239.0.0.0/40\" },\n      { address: \"239.0.0.1\", group_range: \"10.0.0.0/8\" },\n      { address: \"10.0.0.3\" },\n      { address: \"10.0.0.4\", group_range: \"224.0.0.0/4\" },\n    ] } }";
    expect_diag(
        text,
        "pim.rp[0].group_range",
        4,
        &["did you mean '239.0.0.0/8'"],
    );
    expect_diag(text, "pim.rp[1].group_range", 5, &["prefix length"]);
    expect_diag(text, "pim.rp[2].group_range", 6, &["multicast range"]);
    expect_diag(text, "pim.rp[2].address", 6, &["must be a unicast"]);
    expect_diag(
        text,
        "pim.rp[4].group_range",
        8,
        &["already mapped by pim.rp[3]"],
    );
    expect_diag(
        "{ pim: {\n interfaces: [{ name: 'eth0' }, { name: 'eth0' }] } }",
        "pim.interfaces[1].name",
        2,
        &["listed twice"],
    );
    expect_diag(
        "{ pim: {\n hello_interval_secs: 0 } }",
        "pim.hello_interval_secs",
        2,
        &["1 to 18724"],
    );
}

#[test]
fn msdp_checks() {
    let text = "{\n  msdp: { enabled: true,\n    peers: [ { address: \"10.0.0.2\" },\n      { address: \"10.0.0.2\", mesh_group: \"\" } ],\n    keepalive_secs: 80 } }";
    expect_diag(text, "msdp", 2, &["no local_address"]);
    expect_diag(text, "msdp.peers[1].address", 4, &["listed twice"]);
    expect_diag(
        text,
        "msdp.peers[1].mesh_group",
        4,
        &["mesh group name is empty"],
    );
    expect_diag(
        text,
        "msdp.hold_time_secs",
        2,
        &["longer than the keepalive"],
    );
}

#[test]
fn syntax_errors_have_positions() {
    let d = &errs("{\n  rules: [\n    { input: { interface: 'a' group: 'b' } } ] }")[0];
    assert_eq!((d.line, d.column), (Some(3), Some(31)), "{d}");
    assert!(d.to_string().contains("syntax error"), "{d}");
    let d = &errs("{} x")[0];
    assert!(d.to_string().contains("trailing"), "{d}");
    let d = &errs("")[0];
    assert!(
        d.to_string()
            .contains("an empty configuration is written {}"),
        "{d}"
    );
    let d = &errs("{\n  user: 'mcr\n}")[0];
    assert_eq!(d.line, Some(2), "{d}");
}

#[test]
fn validate_without_positions() {
    let mut c = parse_str(FULL, "x").unwrap();
    c.rules[0].outputs[0].port = 0;
    let e = c.validate().unwrap_err();
    assert_eq!(e.diagnostics.len(), 1);
    assert_eq!(e.diagnostics[0].path, "rules[0].outputs[0].port");
    assert_eq!(e.diagnostics[0].line, None);
    let d = validate_rule(&c.rules[0], "");
    assert_eq!(d[0].path, "outputs[0].port");
    assert_eq!(
        d[0].to_string(),
        "outputs[0].port: port 0 is not allowed; use a port from 1 to 65535"
    );
}

#[test]
fn load_file_reports_missing_file() {
    let e = load_file(std::path::Path::new("/nonexistent/mcr.json5")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/mcr.json5: cannot read"),
        "{e}"
    );
}

#[test]
fn load_file_reads() {
    let dir = std::env::temp_dir().join(format!("mcr-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("red.json5");
    std::fs::write(&p, GUIDE_EXAMPLE).unwrap();
    assert_eq!(load_file(&p).unwrap().rules.len(), 1);
    std::fs::write(&p, "{\n  cores: [1, 1] }").unwrap();
    let e = load_file(&p).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:2:", p.display())), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deep_nesting_does_not_crash() {
    let text = format!("{{ rules: {} }}", "[".repeat(100_000));
    assert!(parse_str(&text, "x").is_err());
    let text = format!("{{}} {}", "[".repeat(100_000));
    assert!(parse_str(&text, "x").is_err());
}

/// Byte-level mutations of a valid config.
fn mutate(base: &str, ops: &[(usize, u8, u8)]) -> String {
    let mut bytes = base.as_bytes().to_vec();
    for &(pos, op, ch) in ops {
        let i = pos % (bytes.len() + 1);
        const CHARS: &[u8] = b" {}[]:,'\"/*\\0123456789.-+abcxyz_\n";
        let c = CHARS[usize::from(ch) % CHARS.len()];
        match op % 3 {
            0 if i < bytes.len() => {
                bytes.remove(i);
            }
            1 => bytes.insert(i, c),
            _ if i < bytes.len() => bytes[i] = c,
            _ => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #[test]
    fn parse_never_panics(text in "\\PC{0,300}") {
        let _ = parse_str(&text, "fuzz");
    }

    #[test]
    fn parse_never_panics_on_mutations(ops in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)) {
        for base in [FULL, GUIDE_EXAMPLE] {
            let text = mutate(base, &ops);
            if let Err(e) = parse_str(&text, "fuzz") {
                // Every diagnostic carries the file and renders.
                for d in &e.diagnostics {
                    prop_assert_eq!(d.file.as_deref(), Some("fuzz"));
                }
                let _ = e.to_string();
            }
        }
    }

    #[test]
    fn round_trip_generated(
        ports in proptest::collection::vec(1u16.., 1..5),
        ttl in proptest::option::of(1u8..),
        name in proptest::option::of("[a-z][a-z0-9 '\"\\\\-]{0,10}"),
    ) {
        let mut c = Config::default();
        for (i, p) in ports.iter().enumerate() {
            c.rules.push(Rule {
                name: name.as_ref().map(|n| format!("{n}{i}")),
                input: Input { interface: "eth0".into(), group: Ipv4Addr::new(239, 0, 0, i as u8), port: *p, source: None },
                outputs: vec![Output { interface: "eth1".into(), group: Ipv4Addr::new(10, 0, 0, 1), port: *p, ttl }],
            });
        }
        let text = c.to_json5();
        let back = parse_str(&text, "rt");
        prop_assert!(back.is_ok(), "{:?}\n{}", back, text);
        prop_assert_eq!(back.unwrap(), c);
    }
}

#[test]
fn load_file_refuses_what_is_not_a_regular_file() {
    let err = crate::load_file(std::path::Path::new("/dev/zero")).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
    let dir = std::env::temp_dir();
    let err = crate::load_file(&dir).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn metrics_listen() {
    let c = parse_str("{ metrics: { listen: \"127.0.0.1:9469\" } }", "m").unwrap();
    assert_eq!(
        c.metrics.listen_addr(),
        Some("127.0.0.1:9469".parse().unwrap())
    );
    let back = parse_str(&c.to_json5(), "saved").unwrap();
    assert_eq!(back, c);
    assert!(!Config::default().to_json5().contains("metrics"));
    let v6 = parse_str("{ metrics: { listen: \"[::1]:9469\" } }", "m").unwrap();
    assert!(v6.metrics.listen_addr().unwrap().is_ipv6());
    let text = "{\n  rules: [],\n  metrics: {\n    listen: \"localhost:9469\",\n  },\n}\n";
    let d = expect_diag(
        text,
        "metrics.listen",
        4,
        &["not an IP:PORT", "127.0.0.1:9469"],
    );
    assert!(d.to_string().starts_with("test.json5:4:"), "{d}");
    let text = "{\n  metrics: { listen: \"0.0.0.0:0\" },\n}\n";
    expect_diag(text, "metrics.listen", 2, &["port 0"]);
    let text = "{\n  metrics: { listne: \"0.0.0.0:1\" },\n}\n";
    let diags = errs(text);
    assert!(
        diags[0].to_string().contains("did you mean 'listen'"),
        "{diags:?}"
    );
}
