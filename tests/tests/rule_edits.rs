//! `mcrctl add` and `remove` edit the running forwarding table instead of
//! recompiling every rule (issue #12 item 13: both under 5 ms at 100,000
//! rules, measured by perf/control_scale.sh). These tests check what such
//! an edit must keep: the other rules' counters, forwarding of the moved
//! rule, the group joins, and that no recompile happened (a recompile per
//! change is what made an add O(rules)).

use mcr_tests::*;

fn rule_stats(m: &Mcrd, id: &str) -> Option<serde_json::Value> {
    let st = m.ctl_json(&["stats"]);
    st["rules"]
        .as_array()
        .expect("stats.rules")
        .iter()
        .find(|r| r["id"] == id)
        .cloned()
}

fn packets(m: &Mcrd, id: &str) -> u64 {
    rule_stats(m, id)
        .and_then(|r| r["packets"].as_u64())
        .unwrap_or_else(|| panic!("no counters for {id}"))
}

/// Whether the relay's input interface has joined `group` (`ip maddr`).
fn joined(t: &Topo, group: &str) -> bool {
    t.relay
        .ip(&["maddr", "show", "dev", &t.i()])
        .lines()
        .any(|l| l.split_whitespace().any(|w| w == group))
}

/// The count of `needle` lines in the log.
fn lines(m: &Mcrd, needle: &str) -> usize {
    m.log_text().lines().filter(|l| l.contains(needle)).count()
}

fn group(k: usize) -> (String, String) {
    (
        format!("239.1.{}.{}", k / 250, k % 250 + 1),
        format!("239.2.{}.{}", k / 250, k % 250 + 1),
    )
}

/// 800 rules (past the exact capture filter's 700 pairs) and 300 (under
/// it, so the filter is rewritten): an add and a remove through the
/// engines are table edits; the rule the removal moves keeps forwarding
/// and counting, the others keep their counts, the removed rule's group
/// is left and the added one's joined.
#[test]
fn add_and_remove_edit_the_table_and_keep_every_other_rule() {
    for n in [800usize, 300] {
        add_and_remove_with(n, false);
    }
}

/// The same with the kernel fast path on (the default). With 300 rules
/// every key fits the interface's budget (1,024 keys): the added rule lands
/// in the kernel too (one key program loaded, no other program touched).
/// With 1,100 the first 1,024 keys are in the kernel, r5 among them, and
/// the added rule (whose group sorts last) stays with the engines. The
/// programs are planned again, the table is still edited.
#[test]
fn add_and_remove_edit_the_table_with_the_fast_path_on() {
    for n in [300usize, 1100] {
        add_and_remove_with(n, true);
    }
}

fn add_and_remove_with(n: usize, fast: bool) {
    let t = Topo::new(1);
    let rules: Vec<String> = (0..n)
        .map(|k| {
            let (i, o) = group(k);
            rule(
                &format!("r{k}"),
                &t.i(),
                &i,
                5000,
                &[output(&t.o(0), &o, 6000)],
            )
        })
        .collect();
    let cfg = with_path(&format!("{{ rules: [ {} ] }}", rules.join(",\n")), fast);
    let mut mcrd = t.mcrd(&cfg);
    let path = |m: &Mcrd, id: &str| {
        let list = m.ctl_json(&["list"]);
        list["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["path"].clone())
    };
    let (on, off) = (serde_json::json!("fast"), serde_json::json!("engines"));
    assert_eq!(
        path(&mcrd, "r5"),
        Some(if fast { on.clone() } else { off.clone() })
    );
    let relay = |k: usize, count: u64| {
        let (i, o) = group(k);
        let l = t.listen(0, &o, 6000, &["--idle-timeout", "1"]);
        t.send(&i, 5000, &["--rate", "2000", "--count", &count.to_string()]);
        assert_exact(&l.finish(), count);
    };
    relay(5, 300);
    relay(n - 1, 200);
    let recompiles = lines(&mcrd, "recompiled");
    assert!(!joined(&t, "239.1.9.9"));
    assert!(joined(&t, &group(1).0));

    let add = mcrd.ctl(&[
        "add",
        "--input-interface",
        &t.i(),
        "--input-group",
        "239.1.9.9",
        "--input-port",
        "5000",
        "--outputs",
        &format!("239.2.9.9:6000:{}", t.o(0)),
        "--name",
        "x",
    ]);
    assert_eq!(add.code, 0, "{add:?}");
    assert!(joined(&t, "239.1.9.9"));
    let l = t.listen(0, "239.2.9.9", 6000, &["--idle-timeout", "1"]);
    t.send("239.1.9.9", 5000, &["--rate", "2000", "--count", "400"]);
    assert_exact(&l.finish(), 400);

    // r1 goes; x, the last rule, moves into its place in the table.
    let rm = mcrd.ctl(&["remove", "--name", "r1"]);
    assert_eq!(rm.code, 0, "{rm:?}");
    let (r1_in, r1_out) = group(1);
    assert!(
        !joined(&t, &r1_in),
        "the removed rule's group is still joined"
    );
    let l = t.listen(0, &r1_out, 6000, &["--duration", "1.5"]);
    t.send(&r1_in, 5000, &["--rate", "2000", "--count", "300"]);
    assert_eq!(l.finish()["packets"], 0, "removed rule still forwards");
    assert!(rule_stats(&mcrd, "r1").is_none());

    // Neither change recompiled: both edited the table.
    assert_eq!(
        lines(&mcrd, "recompiled"),
        recompiles,
        "{}",
        mcrd.log_text()
    );
    assert_eq!(lines(&mcrd, "table edited"), 2, "{}", mcrd.log_text());

    // The moved rule forwards and counts on from where it was; the others
    // kept their counts through both edits.
    let l = t.listen(0, "239.2.9.9", 6000, &["--idle-timeout", "1"]);
    t.send("239.1.9.9", 5000, &["--rate", "2000", "--count", "100"]);
    assert_exact(&l.finish(), 100);
    relay(5, 300);
    let counts = || {
        (
            packets(&mcrd, "x"),
            packets(&mcrd, "r5"),
            packets(&mcrd, &format!("r{}", n - 1)),
        )
    };
    // Snapshots are published every 100 ms.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while counts() != (500, 600, 200) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(counts(), (500, 600, 200));
    let x = rule_stats(&mcrd, "x").unwrap();
    assert_eq!(x["outputs"][0]["packets"], 500, "{x}");
    let list = mcrd.ctl_json(&["list"]);
    assert_eq!(list["rules"].as_array().unwrap().len(), n);
    // The fast path was planned again by the edits: r5 is still on it,
    // the added rule too unless it is past the interface's key budget.
    assert_eq!(
        path(&mcrd, "r5"),
        Some(if fast { on.clone() } else { off.clone() })
    );
    // 1,024: `fastpath::MAX_KEYS`, keys per input interface.
    let x_fast = fast && n < 1024;
    assert_eq!(path(&mcrd, "x"), Some(if x_fast { on } else { off }));
    mcrd.stop();
    // Up to 1,000 rules get their own final line (the rest are summed).
    if n <= 1000 {
        assert_eq!(final_rule_packets(&mcrd, "x"), 500);
    }
}

/// A rule whose output interface does not exist is added and removed
/// without a recompile too, and is reported inactive.
#[test]
fn an_inactive_rule_is_added_and_removed_without_a_recompile() {
    let t = Topo::new(1);
    let mut mcrd = t.mcrd(&engines_only(&t.one_rule("a")));
    let recompiles = lines(&mcrd, "recompiled");
    let add = mcrd.ctl(&[
        "add",
        "--input-interface",
        &t.i(),
        "--input-group",
        "239.1.9.9",
        "--input-port",
        "5000",
        "--outputs",
        "239.2.9.9:6000:nosuchif0",
        "--name",
        "w",
    ]);
    assert_eq!(add.code, 0, "{add:?}");
    let list = mcrd.ctl_json(&["list"]);
    let w = list["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "w")
        .cloned()
        .unwrap();
    assert_eq!(w["state"], "inactive", "{w}");
    assert!(!joined(&t, "239.1.9.9"));
    assert_eq!(mcrd.ctl(&["remove", "--name", "w"]).code, 0);
    assert_eq!(
        mcrd.ctl_json(&["list"])["rules"].as_array().unwrap().len(),
        1
    );
    assert_eq!(
        lines(&mcrd, "recompiled"),
        recompiles,
        "{}",
        mcrd.log_text()
    );
    // Rule a still forwards.
    let l = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "1"]);
    t.send("239.1.1.1", 5000, &["--rate", "2000", "--count", "300"]);
    assert_exact(&l.finish(), 300);
    mcrd.stop();
}
