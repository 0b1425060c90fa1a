#!/usr/bin/env bash
# setup-namespace.sh: create a network namespace connected to the host by a
# veth pair and run one mcrd inside it; or tear all of that down again.
#
#   setup-namespace.sh up NAME ID CONFIG
#   setup-namespace.sh down NAME
#
# up:   creates namespace NAME, the veth pair veth-NAME (host side,
#       10.ID.0.1/24) and veth-NAME-ns (inside NAME, 10.ID.0.2/24), brings
#       lo up, checks CONFIG, then starts
#         mcrd supervisor --config CONFIG --control-socket-path /run/mcr/mcrd-NAME.sock
#       inside NAME in the background. Its pid goes to /run/mcr/mcrd-NAME.pid,
#       its log (stderr) to /run/mcr/mcrd-NAME.log. Returns once the control
#       socket answers.
# down: stops that mcrd (SIGTERM, SIGKILL after 10 s) and deletes the
#       namespace, which also deletes both ends of the veth pair.
#
# NAME: letters, digits, '_' or '-', at most 7 characters, because the
#       interface name veth-NAME-ns must fit the kernel's 15-byte limit.
# ID:   an integer from 1 to 254 (the second octet of the addresses).
#
# Environment: MCRD (default: mcrd from PATH) is the mcrd binary to run;
# MCRCTL (default: the mcrctl next to it, else from PATH) is used to wait
# until the control socket answers.
# Must run as root. See docs/deployment.md.
#
# Unlike many multicast setups, this does not set
# net.ipv4.conf.all.mc_forwarding: mcrd captures at layer 2 (AF_PACKET) and
# sends through its own sockets, so it needs no kernel multicast routing.
# The sysctl is read-only anyway: the kernel sets it while a multicast
# routing daemon (e.g. smcroute, pimd) holds the mroute socket.
set -Eeuo pipefail

RUN_DIR=/run/mcr
MCRD=${MCRD:-mcrd}
# mcrctl next to mcrd, else from PATH; without one, up waits for the socket
# file only.
if [[ -z ${MCRCTL:-} ]]; then
    MCRCTL=$(dirname "$(command -v "$MCRD" || echo "$MCRD")")/mcrctl
    [[ -x $MCRCTL ]] || MCRCTL=$(command -v mcrctl || true)
fi
READY_TIMEOUT_SECS=10
STOP_TIMEOUT_SECS=10

usage() {
    echo "usage: $0 up NAME ID CONFIG" >&2
    echo "       $0 down NAME" >&2
    exit 2
}

die() {
    echo "$0: $*" >&2
    exit 1
}

check_name() {
    local name=$1
    [[ $name =~ ^[A-Za-z0-9_][A-Za-z0-9_-]*$ ]] \
        || die "namespace name '$name' may contain only letters, digits, '_' and '-'"
    # "veth-" + NAME + "-ns" must stay within the 15-byte interface name limit.
    ((${#name} <= 7)) \
        || die "namespace name '$name' is ${#name} characters; at most 7 fit in the interface name veth-$name-ns (15 bytes)"
}

# The pid in the pid file, if it is still an mcrd process.
running_pid() {
    local pidfile=$1 pid comm
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == mcrd ]] || return 1
    echo "$pid"
}

cmd_up() {
    local name=$1 id=$2 config=$3
    check_name "$name"
    [[ $id =~ ^[0-9]+$ ]] && ((id >= 1 && id <= 254)) \
        || die "ID '$id' must be an integer from 1 to 254"
    [[ -r $config ]] || die "cannot read config file '$config'"
    command -v "$MCRD" >/dev/null || die "mcrd not found (set MCRD=/path/to/mcrd)"
    [[ ! -e /run/netns/$name ]] || die "namespace '$name' already exists"

    local host_if="veth-$name" ns_if="veth-$name-ns"
    local socket="$RUN_DIR/mcrd-$name.sock"
    local pidfile="$RUN_DIR/mcrd-$name.pid"
    local logfile="$RUN_DIR/mcrd-$name.log"
    local config_abs
    config_abs=$(realpath "$config")

    # An invalid file is reported here, with file:line:column, before
    # anything is created.
    "$MCRD" check-config "$config_abs" >/dev/null

    mkdir -p "$RUN_DIR"
    ip netns add "$name"
    # From here on, undo everything if a step fails.
    trap 'ip netns del "$name" 2>/dev/null || true' ERR

    ip link add "$host_if" type veth peer name "$ns_if"
    ip link set "$ns_if" netns "$name"
    ip addr add "10.$id.0.1/24" dev "$host_if"
    ip link set "$host_if" up
    ip -n "$name" addr add "10.$id.0.2/24" dev "$ns_if"
    ip -n "$name" link set "$ns_if" up
    ip -n "$name" link set lo up

    # setsid: mcrd outlives this script and the terminal's Ctrl-C. The pid
    # written is the process that becomes mcrd (ip netns exec execs it).
    setsid sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$pidfile" \
        ip netns exec "$name" "$MCRD" supervisor \
        --config "$config_abs" --control-socket-path "$socket" \
        </dev/null >>"$logfile" 2>&1 &

    local waited=0 pid=""
    while ((waited < READY_TIMEOUT_SECS * 10)); do
        pid=$(running_pid "$pidfile") || pid=""
        if [[ -S $socket && -n $pid ]]; then
            if [[ -z $MCRCTL ]] || "$MCRCTL" --socket "$socket" ping >/dev/null 2>&1; then
                echo "namespace $name: veth-$name 10.$id.0.1/24 <-> veth-$name-ns 10.$id.0.2/24; mcrd pid $pid, socket $socket, log $logfile"
                trap - ERR
                return 0
            fi
        fi
        if [[ -s $pidfile && ! -e /proc/$(<"$pidfile") ]]; then
            break # mcrd already exited
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "$0: mcrd did not come up in namespace $name; last lines of $logfile:" >&2
    tail -n 20 "$logfile" >&2 || true
    if pid=$(running_pid "$pidfile"); then
        kill -TERM "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    ip netns del "$name" 2>/dev/null || true
    trap - ERR
    exit 1
}

cmd_down() {
    local name=$1
    check_name "$name"
    local pidfile="$RUN_DIR/mcrd-$name.pid"
    local socket="$RUN_DIR/mcrd-$name.sock"
    local pid waited=0
    if pid=$(running_pid "$pidfile"); then
        kill -TERM "$pid"
        while kill -0 "$pid" 2>/dev/null && ((waited < STOP_TIMEOUT_SECS * 10)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$0: mcrd $pid did not stop within ${STOP_TIMEOUT_SECS}s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
    # mcrd removes its socket when it stops; a killed one leaves it behind.
    if [[ -S $socket ]]; then
        rm -f "$socket"
    fi
    # Deleting the host end removes the pair now; left to the namespace's
    # deletion, the kernel destroys it asynchronously, a little later.
    if ip link show "veth-$name" >/dev/null 2>&1; then
        ip link del "veth-$name"
    fi
    if [[ -e /run/netns/$name ]]; then
        ip netns del "$name"
    fi
    echo "namespace $name removed"
}

if [[ $(id -u) -ne 0 ]]; then
    die "must run as root (creates namespaces and veth pairs)"
fi

case "${1:-}" in
    up)
        [[ $# -eq 4 ]] || usage
        cmd_up "$2" "$3" "$4"
        ;;
    down)
        [[ $# -eq 2 ]] || usage
        cmd_down "$2"
        ;;
    *)
        usage
        ;;
esac
