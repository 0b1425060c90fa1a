//! End-to-end tests of the static relay: real namespaces, veth pairs, a real
//! mcrd, traffic from mcrgen counted by `mcrd listen`.

use mcr_tests::*;
use std::time::{Duration, Instant};

/// On the fast path the kernel forwarded everything: no frame reached an engine.
fn assert_engines_idle_if(fast: bool, mcrd: &Mcrd) {
    if fast {
        let stats = mcrd.ctl_json(&["stats"]);
        assert_eq!(engine_frames(&stats), 0, "{stats:#}");
    }
}

#[test]
fn one_to_one_with_group_and_port_translation() {
    one_to_one_with_group_and_port_translation_on(true);
}

#[test]
fn one_to_one_with_group_and_port_translation_through_the_engines() {
    one_to_one_with_group_and_port_translation_on(false);
}

/// The same through a receive ring (`data_plane.receive_ring`) smaller
/// than the stream, so its slots are reused many times over.
#[test]
fn one_to_one_with_group_and_port_translation_through_a_receive_ring() {
    one_to_one_with_group_and_port_translation_with(false, 256);
}

fn one_to_one_with_group_and_port_translation_on(fast: bool) {
    one_to_one_with_group_and_port_translation_with(fast, 0);
}

fn one_to_one_with_group_and_port_translation_with(fast: bool, ring: u32) {
    let t = Topo::new(1);
    let cfg = if ring > 0 {
        engines_with_ring(&t.one_rule("t1"), ring)
    } else {
        with_path(&t.one_rule("t1"), fast)
    };
    let mut mcrd = t.mcrd(&cfg);
    assert_on_path(&mcrd, fast, 1);
    let l = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "1.5"]);
    let sent = t.send(
        "239.1.1.1",
        5000,
        &["--rate", "10000", "--count", "30000", "--size", "512"],
    );
    assert_eq!(sent["sent"], 30000);
    let got = l.finish();
    assert_exact(&got, 30000);
    assert_eq!(got["total"]["min_size"], 512);
    assert_eq!(got["total"]["max_size"], 512);
    // Default multicast output TTL is 1.
    assert_eq!(got["total"]["ttl_max"], 1);
    assert_engines_idle_if(fast, &mcrd);
    let (took, status) = mcrd.stop();
    assert!(status.success(), "mcrd exit: {status}");
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    assert_eq!(final_rule_packets(&mcrd, "t1"), 30000);
}

#[test]
fn fan_out_to_three_interfaces_and_two_groups_on_one() {
    fan_out_to_three_interfaces_and_two_groups_on_one_on(true);
}

#[test]
fn fan_out_to_three_interfaces_and_two_groups_on_one_through_the_engines() {
    fan_out_to_three_interfaces_and_two_groups_on_one_on(false);
}

fn fan_out_to_three_interfaces_and_two_groups_on_one_on(fast: bool) {
    let t = Topo::new(3);
    let outs = vec![
        output(&t.o(0), "239.2.2.1", 6000),
        output(&t.o(0), "239.2.2.2", 6000),
        output(&t.o(1), "239.2.2.3", 6001),
        output(&t.o(2), "239.2.2.4", 6002),
    ];
    let cfg = format!(
        "{{ rules: [ {} ] }}",
        rule("fan", &t.i(), "239.1.1.1", 5000, &outs)
    );
    let mcrd = t.mcrd(&with_path(&cfg, fast));
    assert_on_path(&mcrd, fast, 1);
    let ls = vec![
        t.listen(0, "239.2.2.1", 6000, &["--idle-timeout", "1.5"]),
        t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "1.5"]),
        t.listen(1, "239.2.2.3", 6001, &["--idle-timeout", "1.5"]),
        t.listen(2, "239.2.2.4", 6002, &["--idle-timeout", "1.5"]),
    ];
    t.send(
        "239.1.1.1",
        5000,
        &["--rate", "10000", "--count", "10000", "--size", "1316"],
    );
    for l in ls {
        assert_exact(&l.finish(), 10000);
    }
    assert_engines_idle_if(fast, &mcrd);
}

#[test]
fn multicast_to_unicast_and_unicast_to_multicast() {
    let t = Topo::new(2);
    let cfg = format!(
        "{{ rules: [ {}, {} ] }}",
        rule(
            "m2u",
            &t.i(),
            "239.1.1.1",
            5000,
            &[output(&t.o(0), "10.78.0.2", 7000)]
        ),
        rule(
            "u2m",
            &t.i(),
            "10.77.0.2",
            5100,
            &[output(&t.o(1), "239.3.3.3", 7100)]
        ),
    );
    let _mcrd = t.mcrd(&cfg);
    let uc = t.listen(0, "10.78.0.2", 7000, &["--idle-timeout", "1.5"]);
    let mc = t.listen(1, "239.3.3.3", 7100, &["--idle-timeout", "1.5"]);
    t.send("239.1.1.1", 5000, &["--rate", "5000", "--count", "5000"]);
    let sent = t.send("10.77.0.2", 5100, &["--rate", "5000", "--count", "5000"]);
    // mcrd holds the unicast input port quietly: the sender gets no ICMP
    // port-unreachable back (which mcrgen would count as retries).
    assert_eq!(sent["retried"], 0, "{sent}");
    assert_eq!(sent["errors"], 0, "{sent}");
    let uc = uc.finish();
    assert_exact(&uc, 5000);
    // Unicast output TTL defaults to 64.
    assert_eq!(uc["total"]["ttl_max"], 64);
    assert_exact(&mc.finish(), 5000);
}

#[test]
fn rpf_check_is_bypassed() {
    let t = Topo::new(1);
    // The sender's source is on a subnet the relay has no route back to.
    t.src.ip(&["addr", "flush", "dev", &t.g()]);
    t.src.ip(&["addr", "add", "10.99.5.1/24", "dev", &t.g()]);
    t.relay.sysctl("net.ipv4.conf.all.rp_filter", "1");
    t.relay
        .sysctl(&format!("net.ipv4.conf.{}.rp_filter", t.i()), "1");
    let cfg = t.one_rule("rpf");
    let _mcrd = t.mcrd(&cfg);
    let routes = t.relay.exec(&["ip", "route", "get", "10.99.5.1"]);
    assert!(
        !routes.status.success(),
        "relay must have no route back to the source"
    );
    let l = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "1.5"]);
    t.send("239.1.1.1", 5000, &["--rate", "5000", "--count", "5000"]);
    assert_exact(&l.finish(), 5000);
}

#[test]
fn own_frames_are_never_input_on_a_shared_bridge() {
    // One L2 segment: a bridge in a "switch" namespace joins the sender, the
    // relay's input and output, and the sink. What the relay sends on its
    // output floods back to its input.
    let tag = unique_tag();
    let sw = Netns::new(format!("{tag}-sw"));
    let src = Netns::new(format!("{tag}-src"));
    let relay = Netns::new(format!("{tag}-rly"));
    let sink = Netns::new(format!("{tag}-snk"));
    let dir = TempDir::new(&tag);
    let br = format!("{tag}br");
    sw.ip(&["link", "add", &br, "type", "bridge", "mcast_snooping", "0"]);
    sw.ip(&["link", "set", &br, "up"]);
    let ports = [
        (&src, format!("{tag}g"), "10.77.0.1/24"),
        (&relay, format!("{tag}i"), "10.77.0.2/24"),
        (&relay, format!("{tag}o"), "10.77.0.3/24"),
        (&sink, format!("{tag}s"), "10.77.0.4/24"),
    ];
    for (k, (ns, name, addr)) in ports.iter().enumerate() {
        let p = format!("{tag}p{k}");
        veth(&sw, &p, "", ns, name, addr);
        sw.ip(&["link", "set", &p, "master", &br]);
    }
    let cfg = format!(
        "{{ rules: [ {} ] }}",
        rule(
            "loop",
            &format!("{tag}i"),
            "239.1.1.1",
            5000,
            &[output(&format!("{tag}o"), "239.1.1.1", 5000)]
        )
    );
    let mut mcrd = Mcrd::start(&relay, &dir, &cfg);
    let l = Listener::start(
        &sink,
        &dir,
        &format!("{tag}s"),
        "239.1.1.1",
        5000,
        &["--idle-timeout", "1.5"],
    );
    generate(
        &src,
        &format!("{tag}g"),
        "239.1.1.1",
        5000,
        &["--rate", "2000", "--count", "2000"],
    );
    let got = l.finish();
    // The sink sees the original stream (from the sender) and exactly one
    // relayed copy (from the relay's output address), each complete.
    assert_eq!(total(&got, "received"), 4000, "{got:#}");
    let streams = got["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{got:#}");
    for s in streams {
        assert_eq!(s["received"], 2000, "{got:#}");
        assert_eq!(s["duplicates"], 0, "{got:#}");
        assert_eq!(s["lost"], 0, "{got:#}");
    }
    mcrd.stop();
    assert_eq!(final_rule_packets(&mcrd, "loop"), 2000);
    assert!(
        final_drop(&mcrd, "own_frame") >= 2000,
        "{}",
        mcrd.log_text()
    );
}

#[test]
fn output_ttl_is_the_configured_value() {
    let t = Topo::new(2);
    let cfg = format!(
        "{{ rules: [ {}, {} ] }}",
        rule(
            "ttl",
            &t.i(),
            "239.1.1.1",
            5000,
            &[format!(
                "{{ interface: \"{}\", group: \"239.2.2.2\", port: 6000, ttl: 7 }}",
                t.o(0)
            )]
        ),
        rule(
            "ttl-uc",
            &t.i(),
            "239.1.1.2",
            5000,
            &[format!(
                "{{ interface: \"{}\", group: \"10.78.1.2\", port: 6001, ttl: 3 }}",
                t.o(1)
            )]
        ),
    );
    let _mcrd = t.mcrd(&cfg);
    let l = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "1"]);
    let u = t.listen(1, "10.78.1.2", 6001, &["--idle-timeout", "1"]);
    t.send(
        "239.1.1.1",
        5000,
        &["--rate", "1000", "--count", "200", "--ttl", "32"],
    );
    t.send(
        "239.1.1.2",
        5000,
        &["--rate", "1000", "--count", "200", "--ttl", "32"],
    );
    let got = l.finish();
    assert_exact(&got, 200);
    assert_eq!(got["total"]["ttl_min"], 7);
    assert_eq!(got["total"]["ttl_max"], 7);
    let got = u.finish();
    assert_exact(&got, 200);
    assert_eq!(got["total"]["ttl_min"], 3);
    assert_eq!(got["total"]["ttl_max"], 3);
}

#[test]
fn rule_activates_when_its_interface_appears_and_survives_its_removal() {
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
    let cfg = format!(
        "{{ rules: [ {} ] }}",
        rule(
            "late",
            &i,
            "239.1.1.1",
            5000,
            &[output(&o, "239.2.2.2", 6000)]
        )
    );
    let mut mcrd = Mcrd::start(&relay, &dir, &cfg);
    mcrd.wait_log(
        &format!("Interface '{i}' not found"),
        Duration::from_secs(5),
    );

    let l = Listener::start(
        &sink,
        &dir,
        &s,
        "239.2.2.2",
        6000,
        &["--idle-timeout", "1.5"],
    );
    veth(&src, &g, "10.77.0.1/24", &relay, &i, "10.77.0.2/24");
    // Traffic starts the moment the interface is up; at 1000 pps the first
    // sequence number delivered says how long activation took.
    let t0 = Instant::now();
    generate(
        &src,
        &g,
        "239.1.1.1",
        5000,
        &["--rate", "1000", "--count", "3000"],
    );
    let got = l.finish();
    let first = got["streams"][0]["first_seq"]
        .as_u64()
        .expect("traffic relayed");
    assert!(
        first < 1000,
        "first relayed seq {first}: activation took over 1 s"
    );
    // All engines' capture sockets join before any takes traffic, so the
    // flow never moves between engines at activation.
    assert_eq!(total(&got, "reordered"), 0, "{got:#}");
    assert_eq!(total(&got, "duplicates"), 0, "{got:#}");
    assert!(total(&got, "received") >= 2000, "{got:#}");
    assert!(t0.elapsed() < Duration::from_secs(10));

    // Remove the input interface: the rule deactivates, mcrd keeps running.
    relay.ip(&["link", "del", &i]);
    mcrd.wait_log("interface removed", Duration::from_secs(5));
    mcrd.wait_log(
        &format!("Interface '{i}' not found; rule inactive"),
        Duration::from_secs(5),
    );
    let (_, status) = mcrd.stop();
    assert!(status.success(), "mcrd exit {status}:\n{}", mcrd.log_text());
    assert!(!mcrd.log_text().contains("panicked"));
}

#[test]
fn payload_sizes_from_1_to_jumbo_relay_intact() {
    payload_sizes_relay_intact(true);
}

/// The same sizes through the engines: a 8,972-byte payload fills a 9000
/// MTU frame, whose receive buffer pages are faulted in on first use.
#[test]
fn payload_sizes_from_1_to_jumbo_relay_intact_engines() {
    payload_sizes_relay_intact(false);
}

fn payload_sizes_relay_intact(fast: bool) {
    let t = Topo::new(1);
    for ns_if in [
        (&t.src, t.g()),
        (&t.relay, t.i()),
        (&t.relay, t.o(0)),
        (&t.sinks[0], t.s(0)),
    ] {
        ns_if.0.ip(&["link", "set", &ns_if.1, "mtu", "9000"]);
    }
    let cfg = with_path(&t.one_rule("sizes"), fast);
    let _mcrd = t.mcrd(&cfg);
    for size in [1u32, 23, 24, 100, 1472, 1473, 4000, 8972] {
        let l = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "0.7"]);
        t.send(
            "239.1.1.1",
            5000,
            &[
                "--rate",
                "2000",
                "--count",
                "100",
                "--size",
                &size.to_string(),
            ],
        );
        let got = l.finish();
        assert_eq!(got["packets"], 100, "size {size}: {got:#}");
        assert_eq!(got["bytes"], 100 * u64::from(size), "size {size}: {got:#}");
        if size >= 24 {
            assert_exact(&got, 100);
        }
    }
}

#[test]
fn fragments_and_truncated_frames_are_dropped_and_counted() {
    let t = Topo::new(1);
    let cfg = t.one_rule("frag");
    let mut mcrd = t.mcrd(&cfg);
    let l = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "1.5"]);
    // 3000-byte datagrams on a 1500 MTU link leave the sender fragmented.
    t.send(
        "239.1.1.1",
        5000,
        &["--rate", "1000", "--count", "20", "--size", "3000"],
    );
    // Frames whose IP total length claims more than they carry.
    let script = format!(
        r#"
import socket, struct
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("{g}", 0))
eth = b"\x01\x00\x5e\x01\x01\x01" + b"\x02\x00\x00\x00\x00\x09" + b"\x08\x00"
for claimed in (200, 1000, 60000):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, claimed, 1, 0x4000, 4, 17, 0,
                     socket.inet_aton("10.77.0.1"), socket.inet_aton("239.1.1.1"))
    udp = struct.pack("!HHHH", 4000, 5000, claimed - 20, 0)
    for _ in range(10):
        s.send(eth + ip + udp + b"x" * 16)
"#,
        g = t.g()
    );
    let out = t.src.exec(&["python3", "-c", &script]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Then good traffic still flows through the same engine.
    t.send("239.1.1.1", 5000, &["--rate", "1000", "--count", "500"]);
    let got = l.finish();
    assert_eq!(total(&got, "received"), 500, "{got:#}");
    mcrd.stop();
    assert!(final_drop(&mcrd, "fragment") >= 20, "{}", mcrd.log_text());
    assert!(final_drop(&mcrd, "truncated") >= 30, "{}", mcrd.log_text());
    assert!(!mcrd.log_text().contains("panicked"));
}

/// Many rules on one input interface: the BPF program grows past the
/// 8-bit jump range (about 50 pairs) and, past 700 pairs, falls back to
/// matching in the engine. Both must load in the kernel and forward.
#[test]
fn many_rules_on_one_input_interface() {
    for n in [120usize, 800] {
        let t = Topo::new(1);
        let rules: Vec<String> = (0..n)
            .map(|k| {
                rule(
                    &format!("r{k}"),
                    &t.i(),
                    &format!("239.1.{}.{}", k / 250, k % 250 + 1),
                    5000,
                    &[output(
                        &t.o(0),
                        &format!("239.2.{}.{}", k / 250, k % 250 + 1),
                        6000,
                    )],
                )
            })
            .collect();
        let mut mcrd = t.mcrd(&format!("{{ rules: [ {} ] }}", rules.join(",\n")));
        for k in [0, n / 2, n - 1] {
            let (a, b) = (k / 250, k % 250 + 1);
            let l = t.listen(0, &format!("239.2.{a}.{b}"), 6000, &["--idle-timeout", "1"]);
            t.send(
                &format!("239.1.{a}.{b}"),
                5000,
                &["--rate", "2000", "--count", "500"],
            );
            assert_exact(&l.finish(), 500);
        }
        mcrd.stop();
        assert!(
            !mcrd.log_text().contains("opening capture socket"),
            "{}",
            mcrd.log_text()
        );
    }
}

/// Offered far more than it can take, mcrd says where input was lost: the
/// kernel's capture-queue drops are counted, and every packet is either
/// relayed, counted there, or lost before mcrd could see it.
#[test]
fn capture_queue_overflow_is_counted() {
    let t = Topo::new(1);
    // The engines' capture queue: the kernel fast path has none.
    let cfg = engines_only(&t.one_rule("flood"));
    let mut mcrd = t.mcrd(&cfg);
    let sent = t.send(
        "239.1.1.1",
        5000,
        &["--af-packet", "--count", "1500000", "--size", "64"],
    );
    let sent = sent["sent"].as_u64().unwrap();
    // Let the engine work off its queue: frames still queued at stop are
    // discarded with the socket, and would look like uncounted loss.
    let mut last = u64::MAX;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        let now = mcrd.ctl_json(&["stats"])["rules"][0]["packets"]
            .as_u64()
            .expect("stats rules[0].packets");
        if now == last {
            break;
        }
        last = now;
    }
    mcrd.stop();
    let relayed = final_rule_packets(&mcrd, "flood");
    let overflow = final_drop(&mcrd, "capture_overflow");
    eprintln!("sent {sent}, relayed {relayed}, capture overflow {overflow}");
    assert!(
        relayed + overflow <= sent,
        "relayed {relayed} + overflow {overflow} > sent {sent}"
    );
    if relayed < sent {
        assert!(
            overflow > 0,
            "lost {} packets without counting them",
            sent - relayed
        );
    }
}

/// A wide fan-out flooded past what the relay can take: packets may be lost
/// (and are counted), but every output still gets its packets in order,
/// whole and once.
#[test]
fn overloaded_fan_out_loses_but_never_reorders_or_corrupts() {
    overloaded_fan_out_loses_but_never_reorders_or_corrupts_on(true);
}

#[test]
fn overloaded_fan_out_loses_but_never_reorders_or_corrupts_through_the_engines() {
    overloaded_fan_out_loses_but_never_reorders_or_corrupts_on(false);
}

fn overloaded_fan_out_loses_but_never_reorders_or_corrupts_on(fast: bool) {
    let n = 12;
    let t = Topo::new(n);
    let outs: Vec<String> = (0..n)
        .map(|k| output(&t.o(k), &format!("239.2.2.{}", k + 1), 6000))
        .collect();
    let cfg = format!(
        "{{ rules: [ {} ] }}",
        rule("wide", &t.i(), "239.1.1.1", 5000, &outs)
    );
    let mcrd = t.mcrd(&with_path(&cfg, fast));
    assert_on_path(&mcrd, fast, 1);
    let ls: Vec<Listener> = [0, n / 2, n - 1]
        .iter()
        .map(|&k| {
            t.listen(
                k,
                &format!("239.2.2.{}", k + 1),
                6000,
                &["--idle-timeout", "1.5"],
            )
        })
        .collect();
    t.send(
        "239.1.1.1",
        5000,
        &["--af-packet", "--count", "200000", "--size", "1316"],
    );
    for l in ls {
        let got = l.finish();
        assert!(total(&got, "received") > 0, "{got:#}");
        for k in ["reordered", "duplicates", "corrupted"] {
            assert_eq!(total(&got, k), 0, "{k}: {got:#}");
        }
    }
    assert_engines_idle_if(fast, &mcrd);
}

/// With a receive ring, datagrams of one flow that wait together leave as
/// one UDP GSO send per output, where the output device cuts it into
/// frames: a 1:2 fan-out of 20,000 datagrams in bursts (mcrgen's own GSO
/// sends) reaches both receivers whole, in order and byte for byte, and
/// each output's counters still count datagrams. Output 1 has
/// `tx-udp-segmentation off` (the kernel cuts batches before the device,
/// as for a NIC without the offload) and is batched to; output 0 is a veth
/// with the offload on, which would hand a batch to its peer as one 64 KiB
/// frame (a router there drops it, a packet socket reads one frame), so it
/// gets every datagram as a frame of its own: its peer counts 20,000
/// frames.
#[test]
fn batched_sends_from_a_receive_ring_deliver_every_datagram_in_order() {
    let t = Topo::new(2);
    let off = t
        .relay
        .exec(&["ethtool", "-K", &t.o(1), "tx-udp-segmentation", "off"]);
    assert!(off.status.success(), "{off:?}");
    let cfg = t.two_output_rule("b");
    let mcrd = t.mcrd(&engines_with_ring(&cfg, 4096));
    let frames_at = |k: usize| -> u64 {
        t.sinks[k]
            .net_attr(&t.s(k), "statistics/rx_packets")
            .trim()
            .parse()
            .unwrap()
    };
    let before = frames_at(0);
    for got in burst_to_both_outputs(&t) {
        assert_eq!(got["total"]["min_size"], 300);
        assert_eq!(got["total"]["max_size"], 300);
    }
    let stats = settled_stats(&mcrd, 20000);
    let engines = stats["engines"].as_array().unwrap();
    let sends: u64 = engines
        .iter()
        .map(|e| e["batched_sends"].as_u64().unwrap())
        .sum();
    let datagrams: u64 = engines
        .iter()
        .map(|e| e["batched_datagrams"].as_u64().unwrap())
        .sum();
    assert!(sends > 0 && datagrams >= 2 * sends, "{stats:#}");
    // Only output 1 was batched to.
    assert!(datagrams <= 20000, "{stats:#}");
    assert!(frames_at(0) - before >= 20000, "output 0 got batches whole");
    let outs = &stats["rules"][0]["outputs"];
    for k in 0..2 {
        assert_eq!(outs[k]["packets"], 20000, "{stats:#}");
        assert_eq!(outs[k]["bytes"], 20000 * 300, "{stats:#}");
    }
}

/// `MCR_BATCH=every` (the perf harness's `--uso`, where veths stand for
/// NICs with UDP segmentation offload) batches to every output, even a
/// veth with the offload on: its peer then receives batches whole, fewer
/// frames than datagrams, carrying every datagram's payload behind one
/// set of headers, which is how the harness counts them: payload bytes
/// over the datagram size, once the headers veth counts per frame are
/// taken off (perf.py `Topo.frame_overhead`). Sink 0 has GRO off (Ethernet,
/// IPv4 and UDP counted: 42 bytes), sink 1 takes its frames in a NAPI poll
/// (GRO on, the sender without TSO: 28). UDP sockets behind them still
/// read every datagram once, in order and intact.
#[test]
fn mcr_batch_every_batches_to_a_veth_with_the_offload_on() {
    let t = Topo::new(2);
    let tso = t.relay.exec(&["ethtool", "-K", &t.o(1), "tso", "off"]);
    assert!(tso.status.success(), "{tso:?}");
    let gro = t.sinks[1].exec(&["ethtool", "-K", &t.s(1), "gro", "on"]);
    assert!(gro.status.success(), "{gro:?}");
    let cfg = engines_with_ring(&t.two_output_rule("b"), 4096);
    let mut mcrd = Mcrd::spawn_as(
        &t.relay,
        &t.dir,
        "mcrd",
        &cfg,
        &["env", "MCR_BATCH=every"],
        &[],
    );
    mcrd.wait_log("mcrd ready", Duration::from_secs(10));
    let rx = |k: usize| -> (u64, u64) {
        let read = |what: &str| -> u64 {
            t.sinks[k]
                .net_attr(&t.s(k), &format!("statistics/rx_{what}"))
                .trim()
                .parse()
                .unwrap()
        };
        (read("packets"), read("bytes"))
    };
    let before = [rx(0), rx(1)];
    burst_to_both_outputs(&t);
    let stats = settled_stats(&mcrd, 20000);
    let datagrams: u64 = stats["engines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["batched_datagrams"].as_u64().unwrap())
        .sum();
    assert!(datagrams > 20000, "both outputs batched to: {stats:#}");
    for (k, overhead) in [(0, 42), (1, 28)] {
        let frames = rx(k).0 - before[k].0;
        let bytes = rx(k).1 - before[k].1;
        assert!(
            frames < 20000,
            "sink {k}: batches arrived whole: {frames} frames"
        );
        // A stray frame (IPv6 neighbour discovery) adds less than a datagram.
        let counted = (bytes - overhead * frames) / 300;
        assert!(
            (20000..=20001).contains(&counted),
            "sink {k}: {frames} frames, {bytes} bytes: {counted} datagrams"
        );
    }
}

/// Sends 20,000 datagrams of 300 bytes at 40,000/s in `mcrgen --gso`
/// bursts to the rule of [`Topo::two_output_rule`], and checks that the
/// listeners on both outputs get every one exactly once, in order and
/// intact; returns what they report.
fn burst_to_both_outputs(t: &Topo) -> [serde_json::Value; 2] {
    let l0 = t.listen(0, "239.2.2.2", 6000, &["--idle-timeout", "2"]);
    let l1 = t.listen(1, "239.2.2.3", 6001, &["--idle-timeout", "2"]);
    let sent = t.send(
        "239.1.1.1",
        5000,
        &[
            "--rate", "40000", "--count", "20000", "--size", "300", "--gso",
        ],
    );
    assert_eq!(sent["sent"], 20000);
    [l0, l1].map(|l| {
        let got = l.finish();
        assert_exact(&got, 20000);
        got
    })
}

/// `mcrctl stats --json` once the rule's first output has counted
/// `packets` (engines publish their counters periodically).
fn settled_stats(mcrd: &Mcrd, packets: u64) -> serde_json::Value {
    let mut stats = mcrd.ctl_json(&["stats"]);
    for _ in 0..50 {
        if stats["rules"][0]["outputs"][0]["packets"] == packets
            && stats["rules"][0]["outputs"][1]["packets"] == packets
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        stats = mcrd.ctl_json(&["stats"]);
    }
    stats
}
