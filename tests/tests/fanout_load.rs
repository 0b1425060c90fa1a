//! Fan-out well under the engines' capacity, as the least-privilege units
//! run mcrd (an unprivileged user keeping only CAP_NET_RAW, so capture
//! buffers are capped by `net.core.rmem_max`), on the engines: no input may
//! be dropped at the capture socket and every copy must arrive (issue #20:
//! `capture_overflow` counted 39,365 of 60,000 frames of a 1:10 fan-out).

use mcr_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const OUTPUTS: usize = 10;
const PACKETS: u64 = 3000;

#[test]
fn fan_out_one_to_ten_unprivileged_drops_nothing() {
    let t = Topo::new(1);
    std::fs::set_permissions(&t.dir.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    let outputs: Vec<String> = (1..=OUTPUTS)
        .map(|k| output(&t.o(0), &format!("239.2.2.{k}"), 6000))
        .collect();
    let cfg = engines_only(&format!(
        "{{ rules: [ {} ] }}",
        rule("fan", &t.i(), "239.1.1.1", 5000, &outputs)
    ));
    let wrapper = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+net_raw",
        "--ambient-caps=+net_raw",
    ];
    let mut m = Mcrd::spawn_as(&t.relay, &t.dir, "nobody", &cfg, &wrapper, &[]);
    m.wait_log("mcrd ready", Duration::from_secs(10));
    let status = std::fs::read_to_string(format!("/proc/{}/status", m.pid())).unwrap();
    let caps = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert_eq!(
        caps.split_whitespace().nth(1),
        Some("0000000000002000"),
        "CAP_NET_RAW only: {caps}"
    );
    assert_on_path(&m, false, 1);

    let listeners: Vec<Listener> = (1..=OUTPUTS)
        .map(|k| {
            t.listen(
                0,
                &format!("239.2.2.{k}"),
                6000,
                &["--idle-timeout", "3", "--duration", "60"],
            )
        })
        .collect();
    // 1,000 frames/s of 1316-byte payloads: 10,000 sends/s, a small share
    // of one engine even in a debug build on a loaded machine.
    t.send(
        "239.1.1.1",
        5000,
        &[
            "--rate",
            "1000",
            "--count",
            &PACKETS.to_string(),
            "--size",
            "1316",
        ],
    );
    for (k, l) in listeners.into_iter().enumerate() {
        let got = l.finish();
        assert_exact(&got, PACKETS);
        assert_eq!(got["bytes"], PACKETS * 1316, "output {k}: {got:#}");
    }

    let mut stats = serde_json::Value::Null;
    assert!(
        wait_until(Duration::from_secs(10), || {
            stats = m.ctl_json(&["stats"]);
            stats["rules"][0]["outputs"]
                .as_array()
                .is_some_and(|o| o.iter().all(|o| o["packets"] == PACKETS))
        }),
        "{stats:#}"
    );
    assert_eq!(stats["rules"][0]["packets"], PACKETS, "{stats:#}");
    for reason in [
        "capture_overflow",
        "no_buffer",
        "output_full",
        "output_error",
    ] {
        assert_eq!(stats["drops"][reason], 0, "{reason}: {stats:#}");
    }

    // Capped below what the capture sockets ask for exactly when twice
    // rmem_max (what SO_RCVBUF grants) is smaller: then, and only then,
    // the log says so.
    let rmem_max: i64 = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let warned = m
        .log_text()
        .contains("capture socket receive buffer capped");
    assert_eq!(warned, 2 * rmem_max < 8 << 20, "{}", m.log_text());
}
