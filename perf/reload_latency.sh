#!/usr/bin/env bash
# Reload latency: file read -> validated -> compiled -> swapped (engines run
# the new table), for N rules that all change. Usage (root):
#   perf/reload_latency.sh [N ...]        default: 10 1000 10000
# Uses target/release binaries; builds them if missing.
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."
[ -x target/release/mcrd ] || cargo build --release --bins
ns="rl$$"
dir=$(mktemp -d)
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link add rl-in type veth peer name rl-out
ip -n "$ns" link set rl-in up
ip -n "$ns" link set rl-out up

gen() { # N PORT_OFFSET
    python3 - "$1" "$2" <<'PY'
import sys
n, off = int(sys.argv[1]), int(sys.argv[2])
rules = []
for i in range(n):
    g = f"239.{10 + i // 65536}.{(i // 256) % 256}.{i % 256}"
    rules.append(f'{{ name: "r{i}", input: {{ interface: "rl-in", group: "{g}", port: 5000 }}, '
                 f'outputs: [ {{ interface: "rl-out", group: "{g}", port: {6000 + off} }} ] }}')
print("{ rules: [\n" + ",\n".join(rules) + "\n] }")
PY
}

printf '| rules | start to ready | mcrctl reload (wall) | parse+validate | compile+swap | peak RSS |\n|---|---|---|---|---|---|\n'
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(10 1000 10000)
for n in "${sizes[@]}"; do
    gen "$n" 0 > "$dir/c.json5"
    t0=$(date +%s%N)
    ip netns exec "$ns" target/release/mcrd --log-level warn supervisor --config "$dir/c.json5" \
        --control-socket-path "$dir/s.sock" 2>"$dir/log" &
    pid=$!
    until target/release/mcrctl --socket "$dir/s.sock" ping >/dev/null 2>&1; do sleep 0.01; done
    t1=$(date +%s%N)
    gen "$n" 1 > "$dir/c.json5"
    t2=$(date +%s%N)
    out=$(target/release/mcrctl --socket "$dir/s.sock" --json --timeout 120 reload)
    t3=$(date +%s%N)
    parse=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["parse_us"])')
    swap=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["compile_swap_us"])')
    rss=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")
    printf '| %s | %d ms | %d ms | %d ms | %d ms | %s MiB |\n' "$n" $(((t1 - t0) / 1000000)) $(((t3 - t2) / 1000000)) $((parse / 1000)) $((swap / 1000)) "$rss"
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
