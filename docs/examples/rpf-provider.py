#!/usr/bin/env python3
"""A small reference RPF provider for mcrd (see docs/rpf-provider.md).

It serves a route table, read from a JSON file, on a Unix stream socket:

    {"routes": [{"prefix": "10.1.0.0/16", "upstream_interface": "eth1",
                 "upstream_neighbor": "10.2.0.1", "metric": 100}, ...]}

mcrd asks one JSON line per question, {"query":"rpf","source":"10.1.0.5"},
and gets one line back per question, in order: the longest-prefix match,
{"source":"10.1.0.5","prefix":"10.1.0.0/16","upstream_interface":"eth1",
"upstream_neighbor":"10.2.0.1","metric":100,"ttl":30}, or
{"source":"10.1.0.5","upstream_interface":null} when nothing matches.

The file is watched (its modification time, every 100 ms): when a route is
added, changed or removed, every connected client gets a push,
{"push":"rpf","prefix":"10.1.0.0/16",...} (with "upstream_interface":null
for a removed route).

Usage: rpf-provider.py --socket /run/routing/rpf.sock --routes routes.json [--ttl 30]
Standard library only; Python 3.8 or later.
"""

import argparse
import ipaddress
import json
import os
import selectors
import socket
import sys
import time


def load(path):
    """The route table: {ip_network: route dict}. A bad file keeps nothing."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        table = {}
        for r in data.get("routes", []):
            net = ipaddress.ip_network(r["prefix"], strict=True)
            table[net] = {
                "upstream_interface": r["upstream_interface"],
                "upstream_neighbor": r.get("upstream_neighbor"),
                "metric": int(r.get("metric", 0)),
            }
        return table
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"rpf-provider: cannot read {path}: {e}", file=sys.stderr)
        return None


def lookup(table, source):
    """Longest-prefix match of source in table: (network, route) or None."""
    try:
        addr = ipaddress.ip_address(source)
    except ValueError:
        return None
    best = None
    for net, route in table.items():
        if addr in net and (best is None or net.prefixlen > best[0].prefixlen):
            best = (net, route)
    return best


def answer(table, request, ttl):
    if request.get("query") != "rpf":
        return {"error": "unknown query"}
    source = request.get("source", "")
    hit = lookup(table, source)
    if hit is None:
        return {"source": source, "upstream_interface": None, "ttl": ttl}
    net, route = hit
    return dict(source=source, prefix=str(net), ttl=ttl, **route)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True)
    ap.add_argument("--routes", required=True)
    ap.add_argument("--ttl", type=float, default=30.0)
    args = ap.parse_args()

    table = load(args.routes) or {}
    try:
        mtime = os.stat(args.routes).st_mtime_ns
    except OSError:
        mtime = 0
    try:
        os.unlink(args.socket)
    except FileNotFoundError:
        pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(args.socket)
    server.listen(16)
    server.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(server, selectors.EVENT_READ)
    clients = {}  # socket -> bytearray of unread input
    print(f"rpf-provider: serving {len(table)} routes on {args.socket}", flush=True)

    def send(conn, obj):
        try:
            conn.sendall((json.dumps(obj) + "\n").encode())
        except OSError:
            drop(conn)

    def drop(conn):
        if conn in clients:
            sel.unregister(conn)
            del clients[conn]
            conn.close()

    while True:
        for key, _ in sel.select(timeout=0.1):
            if key.fileobj is server:
                conn, _ = server.accept()
                conn.setblocking(True)
                sel.register(conn, selectors.EVENT_READ)
                clients[conn] = bytearray()
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                drop(conn)
                continue
            buf = clients[conn]
            buf.extend(data)
            while b"\n" in buf:
                line, _, rest = bytes(buf).partition(b"\n")
                buf[:] = rest
                if not line.strip():
                    continue
                try:
                    request = json.loads(line)
                except ValueError:
                    send(conn, {"error": "not JSON"})
                    continue
                send(conn, answer(table, request, args.ttl))
        try:
            now = os.stat(args.routes).st_mtime_ns
        except OSError:
            continue
        if now != mtime:
            mtime = now
            new = load(args.routes)
            if new is None:
                continue
            for net in set(table) | set(new):
                if table.get(net) != new.get(net):
                    push = {"push": "rpf", "prefix": str(net), "ttl": args.ttl}
                    push.update(new.get(net) or {"upstream_interface": None})
                    for conn in list(clients):
                        send(conn, push)
            table = new


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
