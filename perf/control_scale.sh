#!/usr/bin/env bash
# Control-plane scale: add/remove latency, stats, and an unchanged reload,
# with N rules (each its own input group) on a veth pair in a namespace.
# Usage (root):
#   perf/control_scale.sh [N ...]          default: 10000 100000
#   PROFILE=release perf/control_scale.sh   (default: debug, the warm one)
#   MCRD=path/to/mcrd perf/control_scale.sh (a binary built elsewhere)
#   FAST=1 perf/control_scale.sh            (kernel_fast_path: true; default off)
#   LOG=mcr_controlplane=debug,warn KEEP_LOG=/tmp/cs ...  keeps the log, whose
#   "recompiled" lines give the phase times of every change
# Prints one line per N: add/remove median and worst over 20 each, for a
# rule whose group sorts after every other (past_budget: with FAST=1, past
# the fast path's key budget, on the engines) and for one whose group sorts
# before them (in_program: with FAST=1 it lands in the kernel, changing the
# interface's programs), each with the path `list` gave the added rule;
# stats, an unchanged reload (wall time seen by the client), start and
# SIGTERM.
set -euo pipefail
[ -n "${DEBUG:-}" ] && set -x
cd "$(dirname "$0")/.."
profile=${PROFILE:-debug}
bin=${MCRD:-target/$profile/mcrd}
[ -x "$bin" ] || cargo build ${profile/debug/} ${profile/release/--release} -p mcr-cli --bin mcrd
ns="cs$$"
dir=$(mktemp -d)
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link add cs-in type veth peer name cs-out
ip -n "$ns" link set cs-in up
ip -n "$ns" link set cs-out up
# Addresses, so that every rule is active (an output without one waits,
# and a table of waiting rules measured nothing of the data plane).
ip -n "$ns" addr add 10.99.0.1/24 dev cs-in
ip -n "$ns" addr add 10.99.1.1/24 dev cs-out
ip netns exec "$ns" sysctl -qw net.ipv4.igmp_max_memberships=200000

fast=$([ -n "${FAST:-}" ] && echo true || echo false)
gen() { # N FILE
    python3 - "$1" "$2" "$fast" <<'PY'
import sys
n, path, fast = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(path, "w") as f:
    f.write(f"{{ data_plane: {{ kernel_fast_path: {fast} }}, rules: [\n")
    for i in range(n):
        g = f"239.{10 + i // 65536}.{(i // 256) % 256}.{i % 256}"
        f.write(f'{{ name: "r{i}", input: {{ interface: "cs-in", group: "{g}", port: 5000 }}, '
                f'outputs: [ {{ interface: "cs-out", group: "239.255.0.1", port: 6000 }} ] }},\n')
    f.write("] }\n")
PY
}

client() { # SOCKET N
    python3 - "$1" "$2" <<'PY'
import json, socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_UNIX); s.connect(path); f = s.makefile("rwb")
f.readline()
def ask(req):
    t0 = time.perf_counter()
    f.write((json.dumps(req) + "\n").encode()); f.flush()
    a = json.loads(f.readline())
    assert a["ok"], a
    return (time.perf_counter() - t0) * 1000, a
def path_of(name):
    rules = ask({"cmd": "list"})[1]["result"]["rules"]
    return next(r.get("path") for r in rules if r["id"] == name)
med = lambda v: sorted(v)[len(v) // 2]
# Two kinds of edit: a group that sorts after every rule's (with the fast
# path on: past the interface's key budget, so no program changes), and one
# that sorts before them (with the fast path on: it lands in the kernel,
# one key program loaded, and the last key is pushed out; its removal
# brings that key back). The added rule's path is read back once per kind.
phases = []
for label, prefix in (("past_budget", "239.200.0"), ("in_program", "239.0.0")):
    def rule(k):
        return {"name": f"x{k}", "input": {"interface": "cs-in", "group": f"{prefix}.{k + 1}", "port": 7000},
                "outputs": [{"interface": "cs-out", "group": "239.255.0.2", "port": 6001}]}
    ask({"cmd": "add", "rule": rule(99)})
    path = path_of("x99")
    ask({"cmd": "remove", "name": "x99"})
    add, rem = [], []
    for k in range(20):
        add.append(ask({"cmd": "add", "rule": rule(k)})[0])
        rem.append(ask({"cmd": "remove", "name": f"x{k}"})[0])
    phases.append(f"{label}[path={path}] add_ms(median/max)={med(add):.2f}/{max(add):.2f} "
                  f"remove_ms={med(rem):.2f}/{max(rem):.2f}")
stats = min(ask({"cmd": "stats"})[0] for _ in range(3))
ping = max(ask({"cmd": "ping"})[0] for _ in range(20))
reload_ms, a = ask({"cmd": "reload"})
print(f"rules={n} {' '.join(phases)} stats_ms={stats:.1f} ping_max_ms={ping:.2f} "
      f"reload_unchanged_ms={reload_ms:.0f} (unchanged={a['result']['unchanged']}, "
      f"parse_us={a['result'].get('parse_us')}, compile_swap_us={a['result'].get('compile_swap_us')})")
PY
}

for n in "${@:-10000 100000}"; do
    gen "$n" "$dir/c.json5"
    t0=$(date +%s.%N)
    ip netns exec "$ns" "$bin" --log-level "${LOG:-warn}" supervisor --config "$dir/c.json5" \
        --control-socket-path "$dir/m.sock" 2>"$dir/log" &
    pid=$!
    until [ -S "$dir/m.sock" ] && python3 -c "import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);s.settimeout(600);s.recv(100)" "$dir/m.sock" 2>/dev/null; do
        kill -0 "$pid" || { cat "$dir/log"; exit 1; }
        sleep 0.1
    done
    t1=$(date +%s.%N)
    client "$dir/m.sock" "$n"
    t2=$(date +%s.%N)
    kill -TERM "$pid"; wait "$pid" || true; pid=
    [ -n "${KEEP_LOG:-}" ] && cp "$dir/log" "$KEEP_LOG.$n"
    t3=$(date +%s.%N)
    echo "rules=$n kernel_fast_path=$fast start_s=$(echo "$t1 - $t0" | bc) sigterm_to_exit_s=$(echo "$t3 - $t2" | bc) ($bin)"
done
