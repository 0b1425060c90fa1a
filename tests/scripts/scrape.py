#!/usr/bin/env python3
"""Scrapes an mcrd metrics endpoint for the end-to-end tests.

  scrape.py URL                 one scrape, parsed with
                                prometheus_client.parser; prints
                                {"families": {name: type}, "samples":
                                [[name, labels, value], ...], "bytes": N}
  scrape.py URL --storm N       N concurrent scrapers while two stalled
                                connections stay open (one never sends,
                                one sends a request and never reads);
                                prints {"ok": n, "failed": [...],
                                "max_secs": s, "total_secs": s}
"""
import json
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def fetch(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}")
        return r.read().decode()


def parse(text):
    families = {}
    samples = []
    for f in text_string_to_metric_families(text):
        families[f.name] = f.type
        for s in f.samples:
            samples.append([s.name, s.labels, s.value])
    return families, samples


def one(url):
    text = fetch(url)
    families, samples = parse(text)
    print(json.dumps({"families": families, "samples": samples, "bytes": len(text)}))


def storm(url, n):
    u = urllib.parse.urlparse(url)
    addr = (u.hostname, u.port)
    silent = socket.create_connection(addr)
    # A small receive buffer, set before connecting so the window stays
    # small: the answer cannot all be parked in the kernel.
    stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(addr)
    stalled.sendall(f"GET {u.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    time.sleep(0.2)
    results = [None] * n
    texts = [None] * n
    start = threading.Barrier(n)

    def scraper(i):
        try:
            start.wait()
            t0 = time.monotonic()
            text = fetch(url, timeout=30)
            took = time.monotonic() - t0
            # Whole answers only (parsing all 100 in Python threads would
            # measure the GIL; one is parsed below).
            # mcr_uptime_seconds is the last family written.
            if "\nmcr_uptime_seconds " not in text:
                raise RuntimeError(f"truncated answer ({len(text)} bytes)")
            texts[i] = text
            results[i] = ("ok", took)
        except Exception as e:  # noqa: BLE001 - reported to the test
            results[i] = (f"{type(e).__name__}: {e}", None)

    t0 = time.monotonic()
    threads = [threading.Thread(target=scraper, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.monotonic() - t0
    ok = [r[1] for r in results if r[0] == "ok"]
    if ok:
        parse(next(t for t in texts if t))
    failed = [r[0] for r in results if r[0] != "ok"]
    # The stalled connections are still open here: close them only now.
    silent.close()
    stalled.close()
    print(json.dumps({"ok": len(ok), "failed": failed,
                      "max_secs": max(ok) if ok else None, "total_secs": total}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[2] == "--storm":
        storm(sys.argv[1], int(sys.argv[3]))
    else:
        one(sys.argv[1])
