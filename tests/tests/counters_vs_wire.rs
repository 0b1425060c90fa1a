//! Issue 14 item 5: every rule and output counter is a fact about the
//! wire, on both data paths, and lives as long as the rule: across a
//! reload, the input interface deleted and re-created, and an output
//! interface deleted and re-created. (The 70,000-rule case, outputs of rules
//! at table index 65,535 and beyond, is the unit test
//! `engine::tests::sends_past_rule_65535_are_attributed` in the data plane:
//! a 70,000-rule relay is too heavy for this shared test machine.)

use mcr_tests::*;
use std::time::Duration;

const PER_PHASE: u64 = 2000;

fn rule_state(mcrd: &Mcrd) -> String {
    let list = mcrd.ctl_json(&["list"]);
    let k = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "k")
        .cloned()
        .unwrap_or_default();
    k["state"].as_str().unwrap_or("").to_string()
}

/// Sends one phase and returns what each sink received.
fn phase(t: &Topo) -> [u64; 2] {
    let l0 = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "1.5"]);
    let l1 = t.listen(1, "239.2.2.3", 6001, &["--idle-timeout", "1.5"]);
    let sent = t.send(
        "239.1.1.1",
        5000,
        &["--rate", "5000", "--count", &PER_PHASE.to_string()],
    );
    assert_eq!(sent["sent"], PER_PHASE, "{sent:#}");
    [
        total(&l0.finish(), "received"),
        total(&l1.finish(), "received"),
    ]
}

fn counters(mcrd: &Mcrd) -> (u64, u64, u64) {
    let mut s = serde_json::Value::Null;
    // Engines publish every 100 ms; the fast path is read on demand.
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(150));
        s = mcrd.ctl_json(&["stats"]);
    }
    let r = s["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "k")
        .unwrap()
        .clone();
    let out = |label: &str| {
        r["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["output"].as_str().unwrap().starts_with(label))
            .map(|o| o["packets"].as_u64().unwrap())
            .unwrap_or(0)
    };
    (
        r["packets"].as_u64().unwrap(),
        out("239.2.2.2:6000@"),
        out("239.2.2.3:6001@"),
    )
}

fn counters_follow_the_wire(fast: bool) {
    let t = Topo::new(2);
    let cfg = t.two_output_rule("k");
    let mcrd = t.mcrd(&with_path(&cfg, fast));
    assert_on_path(&mcrd, fast, 1);
    let mut input = 0;
    let mut got = [0u64; 2];
    let mut check = |mcrd: &Mcrd, step: &str, recv: [u64; 2]| {
        input += PER_PHASE;
        got[0] += recv[0];
        got[1] += recv[1];
        let (rule, o0, o1) = counters(mcrd);
        assert_eq!(
            rule, input,
            "{step}: rule counter vs frames sent into the input"
        );
        assert_eq!(
            o0, got[0],
            "{step}: output 0 counter vs frames its sink received"
        );
        assert_eq!(
            o1, got[1],
            "{step}: output 1 counter vs frames its sink received"
        );
        // On an idle veth nothing is lost: the counts are the phases'.
        assert_eq!(got, [input, input], "{step}");
    };

    let r = phase(&t);
    check(&mcrd, "first phase", r);

    // A reload that adds a rule ahead of it (the table is rebuilt and
    // the rule moves to another index).
    let extra = rule(
        "extra",
        &t.i(),
        "239.1.1.9",
        5009,
        &[output(&t.o(0), "239.2.2.9", 6009)],
    );
    let cfg2 = cfg.replacen("rules: [ ", &format!("rules: [ {extra}, "), 1);
    assert_ne!(cfg, cfg2);
    std::fs::write(t.dir.path("mcrd.json5"), with_path(&cfg2, fast)).unwrap();
    let reload = mcrd.ctl(&["reload"]);
    assert_eq!(reload.code, 0, "{}", reload.stderr);
    assert_on_path(&mcrd, fast, 2);
    let r = phase(&t);
    check(&mcrd, "after a reload", r);

    // The input interface deleted and re-created (its peer goes with it).
    t.relay.ip(&["link", "del", &t.i()]);
    assert!(wait_until(Duration::from_secs(5), || rule_state(&mcrd) == "inactive"));
    veth(
        &t.src,
        &t.g(),
        "10.77.0.1/24",
        &t.relay,
        &t.i(),
        "10.77.0.2/24",
    );
    assert!(wait_until(Duration::from_secs(5), || rule_state(&mcrd) == "active"));
    // The fast path attaches afresh to the new interface.
    assert!(wait_until(Duration::from_secs(5), || {
        mcrd.ctl_json(&["status"])["kernel_fast_path"]["rules"] == 2 * u64::from(fast)
    }));
    std::thread::sleep(Duration::from_millis(500));
    let r = phase(&t);
    check(&mcrd, "after the input was re-created", r);

    // An output interface deleted and re-created.
    t.relay.ip(&["link", "del", &t.o(1)]);
    assert!(wait_until(Duration::from_secs(5), || rule_state(&mcrd) == "partial"));
    veth(
        &t.relay,
        &t.o(1),
        "10.78.1.1/24",
        &t.sinks[1],
        &t.s(1),
        "10.78.1.2/24",
    );
    assert!(wait_until(Duration::from_secs(5), || rule_state(&mcrd) == "active"));
    assert!(wait_until(Duration::from_secs(5), || {
        mcrd.ctl_json(&["status"])["kernel_fast_path"]["rules"] == 2 * u64::from(fast)
    }));
    std::thread::sleep(Duration::from_millis(500));
    let r = phase(&t);
    check(&mcrd, "after an output was re-created", r);
}

#[test]
fn counters_follow_the_wire_fast_path() {
    counters_follow_the_wire(true);
}

#[test]
fn counters_follow_the_wire_engines() {
    counters_follow_the_wire(false);
}
