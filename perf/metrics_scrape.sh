#!/usr/bin/env bash
# Metrics scrape cost: time and size of GET /metrics for N rules (default
# 10000), each with one output, engines only. Usage (root):
#   perf/metrics_scrape.sh [N ...]          default: 10000
#   SCRAPES=20 perf/metrics_scrape.sh 10000 20000
# Uses target/release binaries; builds them if missing. For each N it
# prints one table row: the answer's size and series count, the time of a
# scrape that renders a fresh snapshot (the first after a sampling tick:
# the server's thread renders it) and of one served from the rendered
# text, in both formats, plus `mcrctl stats` for comparison.
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."
[ -x target/release/mcrd ] || cargo build --release --bins
scrapes=${SCRAPES:-10}
ns="ms$$"
dir=$(mktemp -d)
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add ms-in type veth peer name ms-out
ip -n "$ns" link set ms-in up
ip -n "$ns" link set ms-out up

gen() { # N
    python3 - "$1" <<'PY'
import sys
n = int(sys.argv[1])
rules = []
for i in range(n):
    g = f"239.{10 + i // 65536}.{(i // 256) % 256}.{i % 256}"
    rules.append(f'{{ name: "r{i}", input: {{ interface: "ms-in", group: "{g}", port: 5000 }}, '
                 f'outputs: [ {{ interface: "ms-out", group: "{g}", port: 6000 }} ] }}')
print("{ data_plane: { kernel_fast_path: false }, rules: [\n" + ",\n".join(rules) + "\n] }")
PY
}

measure() { # SCRAPES -> one JSON line
    python3 - "$1" <<'PY'
import json, statistics, sys, time, urllib.request
n = int(sys.argv[1])
url = "http://127.0.0.1:9469/metrics"
def get(openmetrics):
    req = urllib.request.Request(url)
    if openmetrics:
        req.add_header("Accept", "application/openmetrics-text;version=1.0.0")
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
    return time.perf_counter() - t0, body
out = {}
for fmt, om in (("prometheus", False), ("openmetrics", True)):
    fresh, cached = [], []
    for _ in range(n):
        time.sleep(1.15)          # past the next sampling tick: a new snapshot
        t, body = get(om)
        fresh.append(t)
        t, _ = get(om)            # same snapshot: the rendered text
        cached.append(t)
    lines = body.decode().splitlines()
    out[fmt] = {
        "bytes": len(body),
        "series": sum(1 for l in lines if l and not l.startswith("#")),
        "fresh_ms_median": statistics.median(fresh) * 1e3,
        "fresh_ms_max": max(fresh) * 1e3,
        "cached_ms_median": statistics.median(cached) * 1e3,
    }
print(json.dumps(out))
PY
}

printf '| rules | format | bytes | series | scrape, fresh snapshot (median / max) | scrape, rendered (median) | mcrctl --json stats (wall) | mcrd RSS after |\n|---|---|---|---|---|---|---|---|\n'
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(10000)
for n in "${sizes[@]}"; do
    gen "$n" > "$dir/c.json5"
    ip netns exec "$ns" target/release/mcrd --log-level warn supervisor \
        --config "$dir/c.json5" --control-socket-path "$dir/s.sock" \
        --metrics-listen 127.0.0.1:9469 2> "$dir/mcrd.log" &
    pid=$!
    for _ in $(seq 600); do
        target/release/mcrctl --socket "$dir/s.sock" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    t0=$(date +%s%N)
    target/release/mcrctl --socket "$dir/s.sock" --json stats > /dev/null
    stats_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    m=$(ip netns exec "$ns" bash -c "$(declare -f measure); measure $scrapes")
    rss=$(awk '/VmRSS/ {print $2 " " $3}' "/proc/$pid/status")
    for fmt in prometheus openmetrics; do
        python3 - "$m" "$fmt" "$n" "$stats_ms" "$rss" <<'PY'
import json, sys
m, fmt, n, stats_ms, rss = json.loads(sys.argv[1])[sys.argv[2]], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
print(f"| {n} | {fmt} | {m['bytes']:,} | {m['series']:,} | {m['fresh_ms_median']:.1f} / {m['fresh_ms_max']:.1f} ms | "
      f"{m['cached_ms_median']:.1f} ms | {stats_ms} ms | {rss} |")
PY
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
