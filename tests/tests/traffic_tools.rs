//! The traffic tools measure honestly: a direct mcrgen -> mcrd listen run
//! counts every packet, and known losses are counted exactly.

use mcr_tests::*;

fn pair() -> (Netns, Netns, String, String) {
    let tag = unique_tag();
    let a = Netns::new(format!("{tag}-tx"));
    let b = Netns::new(format!("{tag}-rx"));
    let (x, y) = (format!("{tag}x"), format!("{tag}y"));
    veth(&a, &x, "10.66.0.1/24", &b, &y, "10.66.0.2/24");
    (a, b, x, y)
}

#[test]
fn a_million_packets_at_100kpps_arrive_with_nothing_lost_or_reordered() {
    let (a, b, x, y) = pair();
    let dir = TempDir::new(&unique_tag());
    let l = Listener::start(&b, &dir, &y, "239.5.5.5", 5001, &["--idle-timeout", "2"]);
    let sent = generate(
        &a,
        &x,
        "239.5.5.5",
        5001,
        &["--rate", "100000", "--count", "1000000"],
    );
    assert_eq!(sent["sent"], 1_000_000);
    let got = l.finish();
    assert_exact(&got, 1_000_000);
    assert_eq!(got["streams"][0]["first_seq"], 0);
    assert_eq!(got["streams"][0]["last_seq"], 999_999);
}

#[test]
fn every_hundredth_packet_dropped_is_counted_lost() {
    let (a, b, x, y) = pair();
    let dir = TempDir::new(&unique_tag());
    // Drop packets 50, 150, 250, ... of the stream before the listener.
    let nft = |args: &[&str]| {
        let mut full = vec!["nft"];
        full.extend_from_slice(args);
        let out = b.exec(&full);
        assert!(
            out.status.success(),
            "nft {args:?}: {out:?} (install nftables)"
        );
    };
    nft(&["add", "table", "inet", "t"]);
    nft(&[
        "add",
        "chain",
        "inet",
        "t",
        "in",
        "{ type filter hook input priority 0; }",
    ]);
    nft(&[
        "add", "rule", "inet", "t", "in", "udp", "dport", "5001", "numgen", "inc", "mod", "100",
        "==", "50", "drop",
    ]);
    let l = Listener::start(&b, &dir, &y, "239.5.5.5", 5001, &["--idle-timeout", "1.5"]);
    generate(
        &a,
        &x,
        "239.5.5.5",
        5001,
        &["--rate", "50000", "--count", "100000"],
    );
    let got = l.finish();
    assert_eq!(total(&got, "received"), 99_000, "{got:#}");
    assert_eq!(total(&got, "lost"), 1_000, "{got:#}");
    assert_eq!(total(&got, "reordered"), 0, "{got:#}");
    assert_eq!(total(&got, "duplicates"), 0, "{got:#}");
    assert_eq!(total(&got, "corrupted"), 0, "{got:#}");
}

/// Low rates only: the tests run beside each other on two cores, so high
/// rates measure the machine's load more than the pacer. The 1% accuracy
/// figures up to 500 kpps come from the perf harness.
#[test]
fn pacing_holds_the_target_rate() {
    let (a, b, x, y) = pair();
    let dir = TempDir::new(&unique_tag());
    for (rate, count) in [(2_000u64, 4_000u64), (10_000, 20_000)] {
        let l = Listener::start(&b, &dir, &y, "239.5.5.5", 5001, &["--idle-timeout", "1"]);
        let sent = generate(
            &a,
            &x,
            "239.5.5.5",
            5001,
            &["--rate", &rate.to_string(), "--count", &count.to_string()],
        );
        let achieved = sent["achieved_pps"].as_f64().unwrap();
        let err = (achieved - rate as f64).abs() / rate as f64;
        assert!(err < 0.03, "target {rate} pps, achieved {achieved:.0}");
        assert_exact(&l.finish(), count);
    }
}
