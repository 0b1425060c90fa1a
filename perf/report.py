#!/usr/bin/env python3
"""Markdown report and SVG plots from a perf results.json (stdlib only).

    python3 perf/report.py perf/results/<timestamp>      # regenerate report.md and plots
"""

import json
import sys
from pathlib import Path

COLORS = {"mcrd": "#1f77b4", "kernel": "#ff7f0e", "socat": "#2ca02c"}
EXTRA_COLORS = ["#d62728", "#9467bd", "#8c564b", "#e377c2"]


def fr(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def fnum(v, nd=2):
    return "-" if v is None else f"{v:.{nd}f}"


def runs_of(results, sid):
    return [r for r in results["runs"] if r["scenario"] == sid]


def max_text(r):
    if r["status"] == "cannot":
        return "cannot"
    if r["status"] != "ok":
        return r["status"]
    if r.get("max_pass_pps") is None:
        return "< lowest step"
    return ("≥ " if r.get("max_pass_is_gen_limited") else "") + fr(r["max_pass_pps"])


def relay_cpu_text(r, st):
    """The relay's own CPU; forwarding done in softirq is only in the system column."""
    if r["relay"] == "kernel":
        return "(in kernel)"
    v = fnum((st or {}).get("relay_cpu_s_per_mpkt"))
    return f"{v} (+ kernel)" if r["relay"] == "mcrd" else v


def latency_ratio(r, other):
    """p99 latency ratio r / other in a latency scenario (lower is better)."""
    try:
        a = r["steps"][0]["latency_us"]["p99"]
        b = other["steps"][0]["latency_us"]["p99"]
        return f"p99 {a / b:.2f}x"
    except (KeyError, IndexError, TypeError, ZeroDivisionError):
        return "-"


def ratio(r, other, latency=False):
    """max-rate ratio r / other (or p99 latency ratio), as text."""
    if other is None or r is other:
        return ""
    if other["status"] == "cannot":
        return f"({other['relay']} cannot)"
    if latency:
        return latency_ratio(r, other)
    a, b = r.get("max_pass_pps"), other.get("max_pass_pps")
    if r["status"] != "ok" or other["status"] != "ok" or not a:
        return "-"
    if not b:
        return f"({other['relay']} passed no step)"
    s = f"{a / b:.2f}x"
    if r.get("max_pass_is_gen_limited") or other.get("max_pass_is_gen_limited"):
        s += "*"
    return s


def reference_step(runs):
    """Highest ladder target every ok relay passed (same offered traffic for all)."""
    ok = [r for r in runs if r["status"] == "ok"]
    if not ok:
        return None
    targets = None
    for r in ok:
        t = {s["target_pps"] for s in r["steps"] if s["pass"]}
        targets = t if targets is None else targets & t
    if targets:
        finite = [t for t in targets if t]
        return max(finite) if finite and 0 not in targets else (0 if 0 in targets else None)
    firsts = [r["steps"][0]["target_pps"] for r in ok if r["steps"]]
    return min(firsts) if firsts else None


def step_at(r, target):
    for s in r.get("steps", []):
        if s["target_pps"] == target:
            return s
    return None


def svg_plot(results, sid, path):
    runs = [r for r in runs_of(results, sid) if r["status"] == "ok"]
    W, H, L, R, T, B = 640, 400, 70, 130, 30, 50
    pts = {r["relay"]: [(s["offered_pps"], s["delivered_pps"]) for s in r["steps"]] for r in runs}
    xmax = max([x for p in pts.values() for x, _ in p] + [1]) * 1.05
    ymax = xmax

    def X(v):
        return L + (W - L - R) * v / xmax

    def Y(v):
        return H - B - (H - T - B) * v / ymax

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="18" font-size="13">{sid}: delivered vs offered (packets/s per output)</text>']
    for i in range(6):
        v = xmax * i / 5
        o.append(f'<line x1="{X(v):.1f}" y1="{Y(0):.1f}" x2="{X(v):.1f}" y2="{Y(ymax):.1f}" stroke="#eee"/>')
        o.append(f'<line x1="{X(0):.1f}" y1="{Y(v):.1f}" x2="{X(xmax):.1f}" y2="{Y(v):.1f}" stroke="#eee"/>')
        o.append(f'<text x="{X(v):.1f}" y="{H - B + 15}" text-anchor="middle">{fr(v)}</text>')
        o.append(f'<text x="{L - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{fr(v)}</text>')
    o.append(f'<line x1="{X(0)}" y1="{Y(0)}" x2="{X(xmax):.1f}" y2="{Y(ymax):.1f}" stroke="#999" stroke-dasharray="4,3"/>')
    o.append(f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" stroke="#333"/>')
    o.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">offered (pps)</text>')
    o.append(f'<text x="16" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 16 {(T + H - B) / 2})">delivered (pps)</text>')
    for i, (name, p) in enumerate(pts.items()):
        c = COLORS.get(name, EXTRA_COLORS[i % len(EXTRA_COLORS)])
        p = sorted(p)
        o.append('<polyline fill="none" stroke-width="2" stroke="%s" points="%s"/>'
                 % (c, " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in p)))
        for x, y in p:
            o.append(f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" fill="{c}"/>')
        ly = T + 15 + 18 * i
        o.append(f'<line x1="{W - R + 10}" y1="{ly}" x2="{W - R + 30}" y2="{ly}" stroke="{c}" stroke-width="2"/>')
        o.append(f'<text x="{W - R + 35}" y="{ly + 4}">{name}</text>')
    o.append(f'<text x="{W - R + 10}" y="{T + 15 + 18 * len(pts)}" fill="#999">- - ideal</text>')
    o.append("</svg>")
    path.write_text("\n".join(o) + "\n")


def write(results, out):
    out = Path(out)
    meta = results["meta"]
    sids = sorted({r["scenario"] for r in results["runs"]})
    md = [f"# mcr perf run {meta['started']}", "",
          f"- command: `{meta['command']}`",
          f"- git {meta.get('git')}{' (source tree modified)' if meta.get('git_dirty') else ''}, "
          f"kernel {meta['kernel']}, {meta['cpus']} CPUs, load average at start {' '.join(meta['loadavg_start'])}"
          f", at end {' '.join(meta.get('loadavg_end', ['?']))}",
          f"- wall time {meta.get('wall_secs', '?')} s{' (INTERRUPTED)' if meta.get('interrupted') else ''}",
          "- sinks: " + ("; ".join(
              f"{sid} " + (f"apart on CPU {v['apart_on_cpus']} (receive packet steering)"
                           if v.get("apart_on_cpus") else "in the sender's context")
              + f", generator {v.get('gen_cpus') or 'unpinned'}, listeners {v.get('listen_cpus') or 'unpinned'}"
              + (", GRO off (no NAPI poll)" if v.get("napi") is False
                 else ", UDP runs merged (GRO)" if v.get("gro") else ", no GRO merging")
              for sid, v in results.get("sinks", {}).items()) or "in the sender's context"),
          *([f"- relay outputs with UDP segmentation offload (--uso): batches reach the sinks whole, "
             f"sinks count datagrams by payload bytes; netdev_max_backlog {meta.get('netdev_max_backlog')}"]
            if meta.get("settings", {}).get("uso") else []),
          f"- generator max (mcrgen, no relay, pps): "
          + ", ".join(f"{k} {fr(v)}" for k, v in results["generator_max_pps"].items()),
          (f"- S5 rate: {results['latency_rate']['pps']} pps (10% of {results['latency_rate']['from']} "
           f"{results['latency_rate']['base_pps']} pps)" if results.get("latency_rate") else "- S5 not run"),
          f"- pass = at least {99.9}% delivered on the wire (all outputs) and at the sampled listeners, "
          "no reordering, duplicates or corruption. `≥` = passed at the generator's max; "
          "`*` = ratio bounded by the generator.",
          ""]
    md += ["## Summary", "",
           "| scenario | relay | max rate passing (pps) | vs kernel | vs socat | relay CPU s/Mpkt @ ref | system CPU s/Mpkt @ ref | relay idle CPU % | peak RSS MiB | latency p50/p99/p99.9 µs @ ref | delivered @ max offered |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for sid in sids:
        runs = runs_of(results, sid)
        by = {r["relay"]: r for r in runs}
        ref = reference_step(runs)
        lat_sc = sid == results.get("latency_scenario", "S5")
        for r in runs:
            st = step_at(r, ref) if ref is not None else None
            lat = (st or {}).get("latency_us")
            last = r["steps"][-1] if r.get("steps") else None
            rss = r.get("peak_rss_kib")
            md.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                sid, r["relay"], max_text(r), ratio(r, by.get("kernel"), lat_sc), ratio(r, by.get("socat"), lat_sc),
                relay_cpu_text(r, st),
                fnum((st or {}).get("system_cpu_s_per_mpkt")),
                fnum(r.get("idle_relay_cpu_pct"), 1),
                fnum(rss / 1024, 1) if rss else "-",
                f"{lat['p50']:.0f}/{lat['p99']:.0f}/{lat['p999']:.0f}" if lat else "-",
                f"{last['wire_ratio']:.1%} of {fr(last['offered_pps'])}" if last else "-"))
    idle = [r["idle_system_busy_pct"] for r in results["runs"] if r.get("idle_system_busy_pct") is not None]
    if idle:
        md += ["", f"Machine busy while the relays idled (other load, max over relay starts): {max(idle):.0f}% "
               f"of {meta['cpus'] * 100}% (median {sorted(idle)[len(idle) // 2]:.0f}%)."]
    md += ["", "`ref` = the highest ladder step that every relay of the scenario passed "
           "(same offered traffic for all), else the lowest step. In S5 the ratio columns compare "
           "p99 latency (lower is better).", ""]

    for sid in sids:
        runs = runs_of(results, sid)
        md += [f"## {sid}", "", f"![{sid}](plot-{sid}.svg)", "",
               "| relay | target | offered pps | wire delivered | listeners | listener delivered | lost | reordered | relay-ns if drops | backlog drops | relay CPU s/Mpkt | system CPU s/Mpkt | p50 µs | p99 µs | p99.9 µs | max µs | gen retries | pass |",
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in runs:
            if r["status"] != "ok":
                md.append(f"| {r['relay']} | {r['status']}: {r.get('reason', '')} |" + " |" * 16)
                continue
            for s in r["steps"]:
                lat = s.get("latency_us") or {}
                md.append("| {} | {} | {} | {:.2%} | {} | {:.2%} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                    r["relay"], fr(s["target_pps"]) if s["target_pps"] else "max", fr(s["offered_pps"]),
                    s["wire_ratio"], s["listeners"], s["listener_ratio"], s["lost"], s["reordered"],
                    s.get("relay_if_drops", "-"), s.get("backlog_drops", "-"),
                    fnum(s["relay_cpu_s_per_mpkt"]), fnum(s["system_cpu_s_per_mpkt"]),
                    fnum(lat.get("p50"), 0), fnum(lat.get("p99"), 0), fnum(lat.get("p999"), 0),
                    fnum(lat.get("max"), 0), s["gen_retried"],
                    ("yes" if s["pass"] else "no") + (" (gen starved)" if s.get("offered_short") else "")))
        md.append("")
        svg_plot(results, sid, out / f"plot-{sid}.svg")
    (out / "report.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    d = Path(sys.argv[1])
    write(json.loads((d / "results.json").read_text()), d)
    print(d / "report.md")
