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
  multicast_ttl: 4,
  pinning: { "eth0": [0, 1], "eth1": [1] },
  igmp: { enabled: true, querier_interfaces: ["eth1", "eth2"], version: 2, query_interval: 60,
          query_response_interval: 5, robustness: 3 },
  pim: { enabled: true, router_id: "10.0.0.9", rp_address: "10.0.0.9",
         interfaces: [ { name: "eth1" }, { name: "eth2", dr_priority: 10, hello_period: 20 } ],
         static_rp: [ { group: "239.0.0.0/8", rp: "10.0.0.1" }, { rp: "10.0.0.2" },
                      { group: "238.1.1.1", rp: "10.0.0.3" } ],
         hello_period: 10, dr_priority: 5 },
  msdp: { enabled: true, local_address: "10.0.0.9",
          peers: [ { address: "10.0.0.7", mesh_group: "m1", description: "peer \"one\"" },
                   { address: "10.0.0.8", default_peer: true } ],
          keepalive_interval: 30, hold_time: 90 },
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
    assert_eq!(c.control_plane.rpf_provider, "/run/routing/babel.sock");
    assert_eq!(
        c.control_plane.rpf(),
        Some(RpfProvider::Socket("/run/routing/babel.sock".into()))
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
    assert_eq!(c.igmp.query_interval, 125);
    assert_eq!(c.igmp.query_response_interval, 10);
    assert_eq!(c.igmp.robustness, 2);
    assert!(!c.igmp.is_enabled());
    assert_eq!(c.pim.hello_period, 30);
    assert_eq!(c.pim.dr_priority, 1);
    assert!(c.pim.router_id.is_none() && c.pim.rp_address.is_none());
    assert_eq!(c.msdp.keepalive_interval, 60);
    assert_eq!(c.msdp.hold_time, 75);
    // control_plane defaults are the seed system's.
    assert_eq!(c.control_plane.rpf_provider, "disabled");
    assert_eq!(c.control_plane.rpf(), Some(RpfProvider::Disabled));
    assert!(c.control_plane.external_neighbors_enabled);
    assert_eq!(c.control_plane.event_buffer_size, 256);
    assert_eq!(c.multicast_ttl, None);
    assert_eq!(c.multicast_ttl(), DEFAULT_MULTICAST_TTL);
    assert!(c.pinning.is_empty());
    assert!(c.validate().is_ok());
}

#[test]
fn full_config_parses_and_round_trips() {
    let c = parse_str(FULL, "full.json5").unwrap();
    assert_eq!(c.pim.static_rp[1].group, "224.0.0.0/4");
    let ttl = c.multicast_ttl();
    assert_eq!(ttl, 4);
    assert_eq!(c.rules[0].outputs[0].effective_ttl(ttl), 8);
    assert_eq!(c.rules[0].outputs[1].effective_ttl(ttl), 64);
    assert_eq!(c.rules[1].outputs[0].effective_ttl(ttl), 4);
    assert_eq!(
        c.rules[1].outputs[0].effective_ttl(DEFAULT_MULTICAST_TTL),
        1
    );
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
fn member_outputs() {
    let c = parse_str(
        "{ rules: [ { input: { interface: 'a', group: '239.1.1.1', port: 1 }, outputs: [ { interface: 'b', group: '239.2.2.2', port: 2, when: 'members' } ] } ] }",
        "",
    )
    .unwrap();
    assert_eq!(c.rules[0].outputs[0].when, OutputWhen::Members);
    expect_diag(
        "{ rules: [ { input: { interface: 'a', group: '239.1.1.1', port: 1 },\n outputs: [ { interface: 'b', group: '10.2.2.2', port: 2, when: 'members' } ] } ] }",
        "rules[0].outputs[0].when",
        2,
        &["not one"],
    );
    expect_diag(
        "{\n  igmp: {\n    last_member_query_interval_ms: 50 } }",
        "igmp.last_member_query_interval_ms",
        3,
        &["100 to 25500"],
    );
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
        "{\n  igmp: { version: 2,\n    query_response_interval: 30 } }",
        "igmp.query_response_interval",
        3,
        &["IGMPv2 allows 1 to 25"],
    );
    expect_diag(
        "{\n  igmp: { query_interval: 10,\n    query_response_interval: 10 } }",
        "igmp.query_response_interval",
        3,
        &["shorter than the query interval"],
    );
    expect_diag(
        "{ igmp: { querier_interfaces: ['a',\n 'a'] } }",
        "igmp.querier_interfaces[1]",
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
    let text = "{\n  pim: {\n    static_rp: [\n      { rp: \"10.0.0.1\", group: \"239.1.0.0/8\" },\n      { rp: \"10.0.0.1\", group: \"239.0.0.0/40\" },\n      { rp: \"239.0.0.1\", group: \"10.0.0.0/8\" },\n      { rp: \"10.0.0.3\" },\n      { rp: \"10.0.0.4\", group: \"224.0.0.0/4\" },\n      { rp: \"10.0.0.5\", group: \"10.1.1.1\" },\n      { rp: \"10.0.0.6\", group: \"239.9.9.9\" },\n      { rp: \"10.0.0.7\", group: \"239.9.9.9/32\" },\n    ] } }";
    expect_diag(
        text,
        "pim.static_rp[0].group",
        4,
        &["did you mean '239.0.0.0/8'"],
    );
    expect_diag(text, "pim.static_rp[1].group", 5, &["prefix length"]);
    expect_diag(text, "pim.static_rp[2].group", 6, &["multicast range"]);
    expect_diag(text, "pim.static_rp[2].rp", 6, &["must be a unicast"]);
    expect_diag(
        text,
        "pim.static_rp[4].group",
        8,
        &["already mapped by pim.static_rp[3]"],
    );
    expect_diag(
        text,
        "pim.static_rp[5].group",
        9,
        &["not a multicast group"],
    );
    // A single group is a /32: the same range as its /32 form.
    expect_diag(
        text,
        "pim.static_rp[7].group",
        11,
        &["already mapped by pim.static_rp[6]"],
    );
    expect_diag(
        "{ pim: {\n interfaces: [{ name: 'eth0' }, { name: 'eth0' }] } }",
        "pim.interfaces[1].name",
        2,
        &["listed twice"],
    );
    expect_diag(
        "{ pim: {\n hello_period: 0 } }",
        "pim.hello_period",
        2,
        &["1 to 18724"],
    );
}

#[test]
fn msdp_checks() {
    let text = "{\n  msdp: { enabled: true,\n    peers: [ { address: \"10.0.0.2\" },\n      { address: \"10.0.0.2\", mesh_group: \"\" } ],\n    keepalive_interval: 80 } }";
    expect_diag(text, "msdp", 2, &["no local_address"]);
    expect_diag(text, "msdp.peers[1].address", 4, &["listed twice"]);
    expect_diag(
        text,
        "msdp.peers[1].mesh_group",
        4,
        &["mesh group name is empty"],
    );
    expect_diag(text, "msdp.hold_time", 2, &["longer than the keepalive"]);
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
                outputs: vec![Output { interface: "eth1".into(), group: Ipv4Addr::new(10, 0, 0, 1), port: *p, ttl: ttl.map(Ttl::Set), when: OutputWhen::Always }],
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

// ---- The seed system's schema ----

/// The seed system's config (`config/tests/fixtures/seed-system.json5`, a
/// copy of `../shared/compat/seed-system.json5`).
fn seed_fixture_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-system.json5")
}

#[test]
fn seed_system_config_loads_unchanged() {
    let c = load_file(&seed_fixture_path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.pinning.get("eth0"), Some(&vec![0]));
    assert_eq!(c.multicast_ttl, Some(4));
    assert_eq!(c.rules.len(), 2);
    assert_eq!(c.rules[0].outputs[0].effective_ttl(c.multicast_ttl()), 4);
    assert_eq!(c.rules[0].outputs[1].effective_ttl(c.multicast_ttl()), 16);
    let p = &c.pim;
    assert!(p.enabled);
    assert_eq!(p.router_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(p.interfaces.len(), 2);
    assert_eq!(p.interfaces[0].dr_priority, Some(10));
    assert_eq!(p.interfaces[0].hello_period, Some(30));
    assert_eq!(p.hello_period_of(&p.interfaces[1]), 30);
    assert_eq!(p.dr_priority_of(&p.interfaces[1]), 1);
    assert_eq!(p.static_rp[0].group, "239.0.0.0/8");
    assert_eq!(p.static_rp[0].rp, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(p.rp_address, Some(Ipv4Addr::new(10, 0, 0, 1)));
    let g = &c.igmp;
    assert_eq!(g.querier_interfaces, ["eth1", "eth2"]);
    assert_eq!(g.enabled, None);
    assert!(
        g.is_enabled(),
        "querier interfaces without 'enabled' mean on"
    );
    assert_eq!(
        (g.query_interval, g.robustness, g.query_response_interval),
        (125, 2, 10)
    );
    assert_eq!(g.version, 3);
    let m = &c.msdp;
    assert!(m.enabled);
    assert_eq!(m.local_address, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(m.peers[0].mesh_group.as_deref(), Some("core"));
    assert_eq!(
        m.peers[0].description.as_deref(),
        Some("peer in the other domain")
    );
    assert!(!m.peers[0].default_peer);
    assert!(m.peers[1].default_peer);
    assert_eq!((m.keepalive_interval, m.hold_time), (60, 75));
    let cp = &c.control_plane;
    assert_eq!(
        cp.rpf(),
        Some(RpfProvider::Socket("/run/routing/babel.sock".into()))
    );
    assert!(cp.external_neighbors_enabled);
    assert_eq!(cp.event_buffer_size, 512);

    // Saved, it reads back equal and keeps the seed's key names.
    let text = c.to_json5();
    assert_eq!(parse_str(&text, "saved").unwrap(), c, "{text}");
    for key in [
        "pinning",
        "multicast_ttl",
        "router_id",
        "dr_priority",
        "hello_period",
        "static_rp",
        "rp_address",
        "querier_interfaces",
        "query_interval",
        "query_response_interval",
        "robustness",
        "local_address",
        "mesh_group",
        "description",
        "default_peer",
        "keepalive_interval",
        "hold_time",
        "rpf_provider",
        "external_neighbors_enabled",
        "event_buffer_size",
    ] {
        assert!(text.contains(&format!("{key}:")), "{key} missing:\n{text}");
    }
    // Absent in the file, absent in the save.
    assert!(!text.contains("enabled: true,\n    querier"), "{text}");
    assert!(!text.contains("default_peer: false"), "{text}");
}

/// The fixture must stay a faithful copy: compared with the original when
/// the shared folder sits beside the repository (it does not on CI).
#[test]
fn seed_fixture_matches_the_shared_original() {
    let original = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/compat/seed-system.json5");
    let Ok(original) = std::fs::read_to_string(&original) else {
        return;
    };
    let copy = std::fs::read_to_string(seed_fixture_path()).unwrap();
    assert!(
        copy.ends_with(&original),
        "config/tests/fixtures/seed-system.json5 differs from ../shared/compat/seed-system.json5"
    );
}

#[test]
fn igmp_enabled_follows_querier_interfaces_when_absent() {
    let c = parse_str("{ igmp: { querier_interfaces: ['eth1'] } }", "x").unwrap();
    assert!(c.igmp.is_enabled());
    let c = parse_str(
        "{ igmp: { enabled: false, querier_interfaces: ['eth1'] } }",
        "x",
    )
    .unwrap();
    assert!(!c.igmp.is_enabled());
    assert!(c.to_json5().contains("enabled: false"));
    let c = parse_str("{ igmp: { version: 2 } }", "x").unwrap();
    assert!(!c.igmp.is_enabled());
    expect_diag(
        "{ igmp: {\n  enabled: true } }",
        "igmp.enabled",
        2,
        &["querier_interfaces is empty", "remove 'enabled'"],
    );
    expect_diag(
        "{ igmp: {\n  query_interval: 0 } }",
        "igmp.query_interval",
        2,
        &["1 to 31744"],
    );
    expect_diag(
        "{ igmp: {\n  query_interval: 31745 } }",
        "igmp.query_interval",
        2,
        &["1 to 31744"],
    );
    expect_diag(
        "{ igmp: {\n  robustness: 8 } }",
        "igmp.robustness",
        2,
        &["1 to 7"],
    );
    expect_diag(
        "{ igmp: {\n  querier_interfaces: ['eth/1'] } }",
        "igmp.querier_interfaces[0]",
        2,
        &["'/'"],
    );
}

#[test]
fn multicast_ttl_range_and_default() {
    let c = parse_str("{ multicast_ttl: 255 }", "x").unwrap();
    assert_eq!(c.multicast_ttl(), 255);
    expect_diag(
        "{\n  multicast_ttl: 0 }",
        "multicast_ttl",
        2,
        &["multicast_ttl 0", "1 to 255"],
    );
    expect_diag(
        "{\n  multicast_ttl: 256 }",
        "multicast_ttl",
        2,
        &["256 is out of range", "1 to 255"],
    );
    expect_diag(
        "{\n  multicast_ttl: 'x' }",
        "multicast_ttl",
        2,
        &["expected a number"],
    );
    // An output's own ttl wins; unicast outputs keep 64.
    let o = Output {
        interface: "e".into(),
        group: Ipv4Addr::new(239, 1, 1, 1),
        port: 1,
        ttl: None,
        when: OutputWhen::Always,
    };
    assert_eq!(o.effective_ttl(7), 7);
    assert_eq!(
        Output {
            ttl: Some(Ttl::Set(2)),
            ..o.clone()
        }
        .effective_ttl(7),
        2
    );
    let u = Output {
        group: Ipv4Addr::new(10, 1, 1, 1),
        ..o
    };
    assert_eq!(u.effective_ttl(7), DEFAULT_UNICAST_TTL);
}

#[test]
fn pinning_checks() {
    let c = parse_str(
        "{ cores: [0, 1], pinning: { eth0: [1], 'eth1.100': [0, 1] } }",
        "x",
    )
    .unwrap();
    assert_eq!(c.pinning["eth1.100"], vec![0, 1]);
    let d = expect_diag(
        "{ pinning: {\n  eth0: [0],\n  eth0: [1] } }",
        "pinning.eth0",
        3,
        &["interface 'eth0' is pinned twice"],
    );
    assert_eq!(d.column, Some(3));
    expect_diag(
        "{ pinning: {\n  eth0: [] } }",
        "pinning.eth0",
        2,
        &["lists no CPU"],
    );
    expect_diag(
        "{ pinning: {\n  eth0: [0, 0] } }",
        "pinning.eth0[1]",
        2,
        &["CPU 0 is listed twice"],
    );
    expect_diag(
        "{ cores: [0], pinning: {\n  eth0: [0, 3] } }",
        "pinning.eth0[1]",
        2,
        &["CPU 3 is not in cores", "add 3 to cores"],
    );
    expect_diag(
        "{ pinning: {\n  'abcdefghijklmnop': [0] } }",
        "pinning.abcdefghijklmnop",
        2,
        &["at most 15"],
    );
    expect_diag(
        "{ pinning: {\n  eth0: 0 } }",
        "pinning.eth0",
        2,
        &["expected a list"],
    );
    expect_diag(
        "{ pinning: {\n  eth0: [0, 'a'] } }",
        "pinning.eth0[1]",
        2,
        &["CPU numbers"],
    );
    expect_diag(
        "{\n  pinning: ['eth0'] }",
        "pinning",
        2,
        &["expected an object", "pinning maps interface names"],
    );
}

#[test]
fn pim_seed_keys() {
    expect_diag(
        "{ pim: {\n  router_id: '239.1.1.1' } }",
        "pim.router_id",
        2,
        &["router_id 239.1.1.1 is a multicast address"],
    );
    expect_diag(
        "{ pim: {\n  rp_address: '0.0.0.0' } }",
        "pim.rp_address",
        2,
        &["unspecified", "unicast"],
    );
    expect_diag(
        "{ pim: {\n  router_id: '10.0.0' } }",
        "pim.router_id",
        2,
        &["3 parts"],
    );
    expect_diag(
        "{ pim: { interfaces: [\n  { name: 'eth0', hello_period: 18725 } ] } }",
        "pim.interfaces[0].hello_period",
        2,
        &["18725 s is out of range", "1 to 18724"],
    );
    assert!(parse_str(
        "{ pim: { interfaces: [ { name: 'eth0', hello_period: 18724, dr_priority: 4294967295 } ] } }",
        "x"
    )
    .is_ok());
    expect_diag(
        "{ pim: { interfaces: [ { name: 'eth0',\n  dr_priority: 4294967296 } ] } }",
        "pim.interfaces[0].dr_priority",
        2,
        &["out of range", "0 to 4294967295"],
    );
    expect_diag(
        "{ pim: { interfaces: [ { name: 'eth0',\n  dr_priority: -1 } ] } }",
        "pim.interfaces[0].dr_priority",
        2,
        &["out of range"],
    );
    expect_diag(
        "{ pim: { static_rp: [\n  { group: '239.0.0.0/8' } ] } }",
        "pim.static_rp[0]",
        2,
        &["missing required key 'rp'"],
    );
    expect_diag(
        "{ pim: { interfaces: [\n  { dr_priority: 3 } ] } }",
        "pim.interfaces[0]",
        2,
        &["missing required key 'name'"],
    );
}

#[test]
fn msdp_seed_keys() {
    let c = parse_str(
        "{ msdp: { peers: [ { address: '10.0.0.2', default_peer: true } ] } }",
        "x",
    )
    .unwrap();
    assert!(c.msdp.peers[0].default_peer);
    expect_diag(
        "{ msdp: {\n  keepalive_interval: 0 } }",
        "msdp.keepalive_interval",
        2,
        &["keepalive interval 0 s"],
    );
    expect_diag(
        "{ msdp: { keepalive_interval: 60,\n  hold_time: 60 } }",
        "msdp.hold_time",
        2,
        &[
            "hold time (60 s)",
            "longer than the keepalive interval (60 s)",
        ],
    );
    expect_diag(
        "{ msdp: { local_address: '10.0.0.1', peers: [\n  { address: '10.0.0.1' } ] } }",
        "msdp.peers[0].address",
        2,
        &["cannot peer with itself"],
    );
    expect_diag(
        "{ msdp: { peers: [\n  { address: '10.0.0.1', default_peer: 'yes' } ] } }",
        "msdp.peers[0].default_peer",
        2,
        &["true or false"],
    );
}

#[test]
fn rpf_provider_forms() {
    for (text, want) in [
        ("disabled", RpfProvider::Disabled),
        ("kernel", RpfProvider::Kernel),
        ("static", RpfProvider::Static),
        ("/run/rpf.sock", RpfProvider::Socket("/run/rpf.sock".into())),
    ] {
        let c = parse_str(
            &format!("{{ control_plane: {{ rpf_provider: '{text}' }} }}"),
            "x",
        )
        .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(c.control_plane.rpf(), Some(want));
        assert_eq!(parse_str(&c.to_json5(), "x").unwrap(), c);
    }
    for bad in ["Kernel", "", "babel.sock", "none"] {
        expect_diag(
            &format!("{{ control_plane: {{\n  rpf_provider: '{bad}' }} }}"),
            "control_plane.rpf_provider",
            2,
            &[
                "is not an RPF provider",
                "\"disabled\" (default), \"kernel\", \"static\" or the absolute path",
            ],
        );
    }
    let long = format!("/{}", "a".repeat(107));
    expect_diag(
        &format!("{{ control_plane: {{\n  rpf_provider: '{long}' }} }}"),
        "control_plane.rpf_provider",
        2,
        &["108 bytes", "at most 107"],
    );
    expect_diag(
        "{ control_plane: {\n  rpf_provider: 1 } }",
        "control_plane.rpf_provider",
        2,
        &["expected a quoted string", "\"kernel\""],
    );
}

#[test]
fn renamed_keys_name_their_new_key() {
    for (text, path, new) in [
        (
            "{ igmp: {\n  interfaces: [] } }",
            "igmp.interfaces",
            "querier_interfaces",
        ),
        (
            "{ igmp: {\n  query_interval_secs: 1 } }",
            "igmp.query_interval_secs",
            "query_interval",
        ),
        (
            "{ igmp: {\n  query_response_interval_secs: 1 } }",
            "igmp.query_response_interval_secs",
            "query_response_interval",
        ),
        ("{ pim: {\n  rp: [] } }", "pim.rp", "static_rp"),
        (
            "{ pim: {\n  hello_interval_secs: 30 } }",
            "pim.hello_interval_secs",
            "hello_period",
        ),
        (
            "{ pim: { static_rp: [ {\n  address: '10.0.0.1' } ] } }",
            "pim.static_rp[0].address",
            "rp",
        ),
        (
            "{ pim: { static_rp: [ { rp: '10.0.0.1',\n  group_range: '239.0.0.0/8' } ] } }",
            "pim.static_rp[0].group_range",
            "group",
        ),
        (
            "{ msdp: {\n  keepalive_secs: 60 } }",
            "msdp.keepalive_secs",
            "keepalive_interval",
        ),
        (
            "{ msdp: {\n  hold_time_secs: 75 } }",
            "msdp.hold_time_secs",
            "hold_time",
        ),
    ] {
        let d = expect_diag(text, path, 2, &[&format!("did you mean '{new}'?")]);
        assert!(d.message.contains("seed system's name"), "{d}");
    }
    // `address` is still the key of an MSDP peer: no rename there.
    assert!(parse_str("{ msdp: { peers: [ { address: '10.0.0.2' } ] } }", "x").is_ok());
    // Plain typos of the new keys are suggested too.
    for (text, path, want) in [
        (
            "{ igmp: {\n  querier_interface: [] } }",
            "igmp.querier_interface",
            "querier_interfaces",
        ),
        (
            "{ msdp: {\n  keepalive_intreval: 1 } }",
            "msdp.keepalive_intreval",
            "keepalive_interval",
        ),
        ("{ pim: {\n  staticRp: [] } }", "pim.staticRp", "static_rp"),
        ("{\n  multicastTtl: 2 }", "multicastTtl", "multicast_ttl"),
        ("{\n  pining: {} }", "pining", "pinning"),
        (
            "{ msdp: { peers: [ { address: '10.0.0.2',\n  defaultPeer: true } ] } }",
            "msdp.peers[0].defaultPeer",
            "default_peer",
        ),
    ] {
        expect_diag(text, path, 2, &[&format!("did you mean '{want}'?")]);
    }
}

#[test]
fn every_key_round_trips_with_its_name() {
    let c = parse_str(FULL, "full.json5").unwrap();
    let text = c.to_json5();
    let back = parse_str(&text, "saved.json5").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(back, c);
    // Saving the saved text changes nothing.
    assert_eq!(back.to_json5(), text);
    assert!(
        text.contains("\"eth0\": [") || text.contains("eth0: ["),
        "{text}"
    );
    assert!(text.contains("group: \"238.1.1.1\""), "{text}");
    assert!(text.contains("hello_period: 20"), "{text}");
    // Keys absent from the file stay absent (Options), sections are
    // written whole with their defaults (the crate's convention).
    let c = parse_str("{ pim: { interfaces: [ { name: 'eth0' } ] } }", "x").unwrap();
    let text = c.to_json5();
    assert!(
        !text.contains("router_id") && !text.contains("multicast_ttl"),
        "{text}"
    );
    assert!(
        !text.contains("pinning") && !text.contains("querier_interfaces: [\""),
        "{text}"
    );
    assert!(
        text.contains("hello_period: 30") && text.contains("rpf_provider: \"disabled\""),
        "{text}"
    );
    assert_eq!(parse_str(&text, "x").unwrap(), c);
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mcr-cfg-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_fifo_is_refused_at_once_not_waited_on() {
    let d = scratch("fifo");
    let fifo = d.join("cfg.json5");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // No writer ever opens the FIFO: a blocking open would hang forever.
    let (tx, rx) = std::sync::mpsc::channel();
    let f = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(load_file_hashed(&f).map(|_| ()).unwrap_err().to_string());
    });
    let err = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("loading a FIFO must not block");
    assert!(err.contains("not a regular file"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn oversized_files_are_refused_without_reading_them() {
    let d = scratch("big");
    let p = d.join("big.json5");
    let f = std::fs::File::create(&p).unwrap();
    // Sparse: costs no disk, but would be 64 MiB + 1 of reading.
    f.set_len(MAX_FILE_SIZE + 1).unwrap();
    let err = load_file(&p).unwrap_err().to_string();
    assert!(err.contains("MiB a config file may have"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_hash_is_of_the_bytes_parsed() {
    let d = scratch("hash");
    let p = d.join("c.json5");
    let text = wrap_rules(&[good_rule("a", 1)]);
    std::fs::write(&p, &text).unwrap();
    let (c, h) = load_file_hashed(&p).unwrap();
    assert_eq!(c.rules.len(), 1);
    assert_eq!(h, fnv1a64(text.as_bytes()));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn load_file_at_does_not_follow_a_symlink() {
    use std::os::fd::AsFd;
    let d = scratch("at");
    std::fs::write(d.join("real.json5"), "{}").unwrap();
    std::os::unix::fs::symlink(d.join("real.json5"), d.join("link.json5")).unwrap();
    let dir = std::fs::File::open(&d).unwrap();
    assert!(load_file_at(dir.as_fd(), std::path::Path::new("real.json5"), "real").is_ok());
    let err = load_file_at(dir.as_fd(), std::path::Path::new("link.json5"), "link")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read"), "{err}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn rule_names_are_bounded_and_plain() {
    let long = "n".repeat(MAX_RULE_NAME_LEN + 1);
    let ok = "n".repeat(MAX_RULE_NAME_LEN);
    assert!(parse_str(&wrap_rules(&[good_rule(&ok, 1)]), "t").is_ok());
    let e = errs(&wrap_rules(&[good_rule("fine", 1), good_rule(&long, 2)]));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].path, "rules[1].name");
    assert!(e[0].message.contains("129 bytes long"), "{}", e[0].message);
    assert!(
        e[0].message.len() < 300,
        "the message quotes a bounded part"
    );
    for (name, cp) in [
        ("evil\\u202Egnp.exe", "U+202E"),
        ("a\\u2066b", "U+2066"),
        ("zero\\u200Bwidth", "U+200B"),
        ("line\\u2028sep", "U+2028"),
        ("esc\\u001B[31m", "U+001B"),
        ("bom\\uFEFF", "U+FEFF"),
    ] {
        let e = errs(&wrap_rules(&[good_rule(name, 1)]));
        assert_eq!(e.len(), 1, "{name}: {e:?}");
        assert_eq!(e[0].path, "rules[0].name", "{name}");
        assert!(e[0].message.contains(cp), "{name}: {}", e[0].message);
        // The message itself never carries the character raw.
        assert!(
            e[0].message
                .chars()
                .all(|c| crate::text::unsafe_char(c).is_none()),
            "{}",
            e[0].message
        );
    }
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

#[test]
fn static_rpf_routes() {
    let text = "{\n  control_plane: {\n    rpf_provider: 'static',\n    static_rpf: [\n      { source: '10.1.0.0/16', interface: 'eth1', neighbor: '10.2.0.1', metric: 100 },\n      { source: '10.1.0.1/16', interface: 'eth1' },\n      { source: '239.0.0.0/8', interface: 'eth1' },\n      { source: '10.1.0.0/16', interface: 'eth2' },\n      { source: '10.9.9.9', interface: 'a/b' },\n      { source: '10.8.0.0/16', interface: 'eth1', neighbor: '224.0.0.1' },\n    ] } }";
    expect_diag(
        text,
        "control_plane.static_rpf[1].source",
        6,
        &["host bits zero"],
    );
    expect_diag(
        text,
        "control_plane.static_rpf[2].source",
        7,
        &["not unicast"],
    );
    expect_diag(
        text,
        "control_plane.static_rpf[3].source",
        8,
        &["already routed by control_plane.static_rpf[0]"],
    );
    expect_diag(text, "control_plane.static_rpf[4].interface", 9, &["'/'"]);
    expect_diag(
        text,
        "control_plane.static_rpf[5].neighbor",
        10,
        &["unicast"],
    );
    let ok = parse_str(
        "{ control_plane: { rpf_provider: 'static', static_rpf: [ { source: '10.1.0.0/16', interface: 'eth1', neighbor: '10.2.0.1', metric: 100 }, { source: '10.9.9.9', interface: 'eth2' } ] } }",
        "x",
    )
    .unwrap();
    let r = &ok.control_plane.static_rpf;
    assert_eq!(r[0].prefix(), Some((Ipv4Addr::new(10, 1, 0, 0), 16)));
    assert_eq!(r[1].prefix(), Some((Ipv4Addr::new(10, 9, 9, 9), 32)));
    assert_eq!(r[0].metric, Some(100));
    // Saved and read back the same.
    assert_eq!(parse_str(&ok.to_json5(), "y").unwrap(), ok);
}

#[test]
fn broadcast_and_loopback_outputs_are_refused() {
    for (group, needles) in [
        (
            "255.255.255.255",
            &["limited broadcast", "directed broadcast"][..],
        ),
        ("127.0.0.1", &["loopback", "nothing would leave"][..]),
    ] {
        let outs =
            format!("[\n        {{ interface: \"eth1\", group: \"{group}\", port: 1 }},\n      ]");
        let r = rule_text("\"a\"", "\"eth0\"", "\"239.1.1.1\"", "1", "", &outs);
        expect_diag(
            &wrap_rules(&[r]),
            "rules[0].outputs[0].group",
            line_of(0, 8),
            needles,
        );
    }
    // A directed broadcast is a unicast-looking destination: accepted
    // (sent with SO_BROADCAST).
    let outs = "[\n        { interface: \"eth1\", group: \"10.0.0.255\", port: 1 },\n      ]";
    let r = rule_text("\"a\"", "\"eth0\"", "\"239.1.1.1\"", "1", "", outs);
    assert!(parse_str(&wrap_rules(&[r]), "test.json5").is_ok());
}

#[test]
fn rules_feeding_each_other_are_refused() {
    // A: eth0 G1 -> eth1 G2 and B: eth1 G2 -> eth0 G1.
    let a = rule_text(
        "\"a\"",
        "\"eth0\"",
        "\"239.1.1.1\"",
        "5000",
        "",
        "[ { interface: \"eth1\", group: \"239.2.2.2\", port: 6000 } ]",
    );
    let b = rule_text(
        "\"b\"",
        "\"eth1\"",
        "\"239.2.2.2\"",
        "6000",
        "",
        "[ { interface: \"eth0\", group: \"239.1.1.1\", port: 5000 } ]",
    );
    let d = errs(&wrap_rules(&[a.clone(), b]));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].path, "rules[1].outputs");
    assert!(d[0].message.contains("loop"), "{}", d[0].message);
    assert!(
        d[0].message.contains(
            "rules[0] (eth0 239.1.1.1:5000) -> rules[1] (eth1 239.2.2.2:6000) -> rules[0]"
        ),
        "{}",
        d[0].message
    );
    // A chain that does not come back is fine.
    let c = rule_text(
        "\"c\"",
        "\"eth1\"",
        "\"239.2.2.2\"",
        "6000",
        "",
        "[ { interface: \"eth2\", group: \"239.3.3.3\", port: 7000 } ]",
    );
    assert!(parse_str(&wrap_rules(&[a, c]), "test.json5").is_ok());
}

#[test]
fn ttl_decrement_parses_and_round_trips() {
    let outs = "[\n        { interface: \"eth1\", group: \"239.1.1.1\", port: 1, ttl: \"decrement\" },\n      ]";
    let r = rule_text("\"a\"", "\"eth0\"", "\"239.1.1.1\"", "1", "", outs);
    let c = parse_str(&wrap_rules(&[r]), "test.json5").unwrap();
    assert_eq!(c.rules[0].outputs[0].ttl, Some(Ttl::Decrement));
    assert!(c.rules[0].outputs[0].decrements_ttl());
    let again = parse_str(&c.to_json5(), "again.json5").unwrap();
    assert_eq!(again, c);
    let outs = "[\n        { interface: \"eth1\", group: \"239.1.1.1\", port: 1, ttl: \"down\" },\n      ]";
    let r = rule_text("\"a\"", "\"eth0\"", "\"239.1.1.1\"", "1", "", outs);
    let d = errs(&wrap_rules(&[r]));
    assert!(d[0].message.contains("decrement"), "{d:?}");
}

#[test]
fn igmp_proxy_parses_saves_and_validates() {
    let text = "{ igmp: { proxy: { upstream: 'eth0', downstream: ['eth1', 'eth2'] } } }";
    let c = parse_str(text, "x").unwrap();
    let p = c.igmp.proxy.as_ref().unwrap();
    assert_eq!(p.upstream, "eth0");
    assert_eq!(p.downstream, ["eth1", "eth2"]);
    // `config save` writes it and reads back the same; absent stays absent.
    let saved = c.to_json5();
    assert!(saved.contains("proxy"), "{saved}");
    assert_eq!(parse_str(&saved, "saved").unwrap(), c);
    let plain = parse_str("{ igmp: { querier_interfaces: ['eth1'] } }", "x").unwrap();
    assert!(!plain.to_json5().contains("proxy"));
    // `enabled: true` without querier interfaces is fine with a proxy.
    assert!(parse_str(
        "{ igmp: { enabled: true, proxy: { upstream: 'a', downstream: ['b'] } } }",
        "x"
    )
    .is_ok());

    expect_diag(
        "{ igmp: { proxy: {\n  upstream: 'eth0', downstream: [] } } }",
        "igmp.proxy.downstream",
        2,
        &["no downstream interface", "remove 'proxy'"],
    );
    expect_diag(
        "{ igmp: { proxy: { upstream: 'eth0',\n  downstream: ['eth1', 'eth0'] } } }",
        "igmp.proxy.downstream[1]",
        2,
        &[
            "'eth0' is the upstream interface too",
            "remove it from downstream",
        ],
    );
    expect_diag(
        "{ igmp: { proxy: { upstream: 'eth0',\n  downstream: ['eth1', 'eth1'] } } }",
        "igmp.proxy.downstream[1]",
        2,
        &["listed twice"],
    );
    expect_diag(
        "{ igmp: { proxy: {\n  upstream: '', downstream: ['eth1'] } } }",
        "igmp.proxy.upstream",
        2,
        &[],
    );
    expect_diag(
        "{ igmp: { querier_interfaces: ['eth1',\n 'eth0'], proxy: { upstream: 'eth0', downstream: ['eth1'] } } }",
        "igmp.querier_interfaces[1]",
        2,
        &["upstream interface", "remove it from querier_interfaces"],
    );
    // Missing and unknown keys name the key.
    let e = parse_str("{ igmp: { proxy: { downstream: ['eth1'] } } }", "x").unwrap_err();
    assert!(e.to_string().contains("upstream"), "{e}");
    let e = parse_str(
        "{ igmp: { proxy: { upstream: 'a', downstream: ['b'], upstreams: [] } } }",
        "x",
    )
    .unwrap_err();
    assert!(e.to_string().contains("upstreams"), "{e}");
}

#[test]
fn msdp_filters_and_limits() {
    let text = "{ msdp: { enabled: true, local_address: '10.0.0.1', sa_cache_limit: 500,\n  peers: [ { address: '10.0.0.2', sa_limit: 50,\n    sa_filter_in: [ { source: '10.9.0.0/16' }, { group: '239.1.0.0/16', action: 'permit' } ],\n    sa_filter_out: [ { group: '239.2.2.2' } ] } ] } }";
    let c = parse_str(text, "t").unwrap();
    let p = &c.msdp.peers[0];
    assert_eq!(c.msdp.sa_cache_limit, 500);
    assert_eq!(p.sa_limit, Some(50));
    assert_eq!(
        p.sa_filter_in[0].source_prefix(),
        Some(("10.9.0.0".parse().unwrap(), 16))
    );
    assert_eq!(p.sa_filter_in[0].group, "224.0.0.0/4");
    assert_eq!(p.sa_filter_in[0].action, crate::SaFilterAction::Deny);
    assert_eq!(p.sa_filter_in[1].action, crate::SaFilterAction::Permit);
    assert_eq!(
        p.sa_filter_out[0].group_prefix(),
        Some(("239.2.2.2".parse().unwrap(), 32))
    );
    // Saved and read back: the same.
    assert_eq!(parse_str(&c.to_json5(), "saved").unwrap(), c);
    // Defaults are not written for a peer without them.
    let plain = parse_str("{ msdp: { peers: [ { address: '10.0.0.2' } ] } }", "p").unwrap();
    let saved = plain.to_json5();
    assert!(
        !saved.contains("sa_filter_in") && !saved.contains("sa_limit:"),
        "{saved}"
    );
    assert!(saved.contains("sa_cache_limit"), "{saved}");
}

#[test]
fn msdp_filter_and_limit_checks() {
    let bad = "{ msdp: { sa_cache_limit: 0,\n  peers: [ { address: '10.0.0.2', sa_limit: 2000000,\n    sa_filter_in: [ { source: '10.9.0.1/16' },\n      { group: '10.0.0.0/8' } ] } ] } }";
    expect_diag(bad, "msdp.sa_cache_limit", 1, &["out of range"]);
    expect_diag(bad, "msdp.peers[0].sa_limit", 2, &["out of range"]);
    expect_diag(
        bad,
        "msdp.peers[0].sa_filter_in[0].source",
        3,
        &["host bits zero"],
    );
    expect_diag(
        bad,
        "msdp.peers[0].sa_filter_in[1].group",
        4,
        &["multicast"],
    );
    assert!(parse_str(
        "{ msdp: { peers: [ { address: '10.0.0.2', sa_filter_out: [ { action: 'drop' } ] } ] } }",
        "x"
    )
    .is_err());
}

#[test]
fn data_plane_receive_ring() {
    assert_eq!(Config::default().data_plane.receive_ring, 0);
    let c = parse_str("{ data_plane: { receive_ring: 4096 } }", "r").unwrap();
    assert_eq!(c.data_plane.receive_ring, 4096);
    assert!(c.data_plane.kernel_fast_path);
    let back = parse_str(&c.to_json5(), "saved").unwrap();
    assert_eq!(back, c);
    for bad in ["1", "63", "65537"] {
        let text = format!("{{\n  data_plane: {{\n    receive_ring: {bad},\n  }},\n}}\n");
        expect_diag(
            &text,
            "data_plane.receive_ring",
            3,
            &["out of range", "64 to 65536"],
        );
    }
    let text = "{\n  data_plane: { receive_ring: -1 },\n}\n";
    assert!(!errs(text).is_empty());
}
