#!/usr/bin/env python3
"""What idle keep-alive connections cost herald, and whether it gets the memory back (RELIABILITY.md).

Starts herald (release build) on a free loopback port with a fresh store, and in each run:
  1. reads herald's VmRSS (/proc/PID/status) after a warm-up;
  2. opens --connections connections, each sending one GET /-/healthy and keeping the connection open (keep-alive);
     reads VmRSS with them open, and checks /-/healthy and /-/ready on new connections meanwhile;
  3. closes them from this side, waits until herald counts them closed (herald_http_connections), reads VmRSS;
  4. opens as many again and leaves them to herald's server.idle_timeout (--idle-timeout), waits until herald has
     closed them all, reads VmRSS.
Prints one line per run and the medians, and exits 1 when a health check on a new connection was not answered 200
while the connections were open, or herald did not close them all after its idle_timeout. `--short` (the reliability
suite's short form, on a debug build too): 500 connections, one run. Bounded: fixed counts, a timeout on every socket, every wait has a limit.
Loopback only.

    cargo build --release && bench/connections.py [--herald target/release/herald] [--connections 5000] [--runs 3]
"""

import argparse
import os
import re
import resource
import socket
import statistics
import subprocess
import tempfile
import time

REQUEST = b"GET /-/healthy HTTP/1.1\r\nHost: herald\r\n\r\n"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def read_answer(sock):
    """Reads one HTTP/1.1 answer with a Content-Length body; returns (status, head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk
    return int(head[9:12]), head


def get(port, path, timeout=10):
    """GET path on a connection of its own; returns (status, seconds, body)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: herald\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head[9:12]), time.monotonic() - started, body.decode(errors="replace")


def open_connections(port, count):
    """Opens `count` keep-alive connections, each answered once; returns them, still open."""
    connections = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(REQUEST)
        status, head = read_answer(sock)
        if status != 200 or b"connection: close" in head.lower():
            raise RuntimeError(f"connection {len(connections)}: {status} {head!r}")
        connections.append(sock)
    return connections


def open_count(port):
    """herald_http_connections, less the connection asking."""
    _, _, text = get(port, "/metrics")
    match = re.search(r"^herald_http_connections (\S+)$", text, re.M)
    return int(float(match.group(1))) - 1 if match else None


def wait_open(port, at_most, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if open_count(port) <= at_most:
            return True
        time.sleep(0.2)
    return False


def settled_rss(pid, seconds):
    """VmRSS after `seconds`, sampled each second; returns (first, last)."""
    first = rss_kib(pid)
    for _ in range(seconds):
        time.sleep(1)
    return first, rss_kib(pid)


def run_once(port, pid, count, idle_timeout):
    for _ in range(50):
        get(port, "/-/healthy")
    before = rss_kib(pid)
    connections = open_connections(port, count)
    time.sleep(1)
    with_open = rss_kib(pid)
    health = [get(port, path) for path in ("/-/healthy", "/-/ready", "/-/healthy", "/-/ready")]
    for sock in connections:
        sock.close()
    if not wait_open(port, 0, 60):
        raise RuntimeError("herald did not see the connections close")
    closed_now, closed_later = settled_rss(pid, 5)

    connections = open_connections(port, count)
    timed_out = False
    if wait_open(port, 0, idle_timeout + 60):
        timed_out = True
    for sock in connections:
        sock.close()
    idle_now, idle_later = settled_rss(pid, 5)
    return {
        "before": before,
        "open": with_open,
        "closed": closed_now,
        "closed_5s": closed_later,
        "idled_out": idle_now,
        "idled_out_5s": idle_later,
        "per_connection": (with_open - before) * 1024 / count,
        "health": [(status, seconds) for status, seconds, _ in health],
        "timed_out": timed_out,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--herald", default="target/release/herald")
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-timeout", type=int, default=5, help="herald's server.idle_timeout, seconds")
    parser.add_argument("--short", action="store_true", help="500 connections, one run (the suite's short form)")
    args = parser.parse_args()
    if args.short:
        args.connections, args.runs = 500, 1
    if not 1 <= args.connections <= 20000 or not 1 <= args.runs <= 10:
        parser.error("--connections 1..20000, --runs 1..10")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.connections + 256
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise SystemExit(f"the open-file hard limit {hard} is below {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))

    with tempfile.TemporaryDirectory(prefix="herald-connections-") as work:
        port = free_port()
        config = os.path.join(work, "herald.yaml")
        with open(config, "w") as file:
            file.write(
                f"server:\n  listen: 127.0.0.1:{port}\n  idle_timeout: {args.idle_timeout}s\n"
                f"  max_connections: {args.connections + 1000}\n"
                f"storage: {{url: 'sqlite://{work}/herald.db'}}\n"
            )
        log = open(os.path.join(work, "herald.log"), "w")
        process = subprocess.Popen([args.herald, "serve", "-c", config], stdout=log, stderr=log)
        try:
            for _ in range(100):
                try:
                    if get(port, "/-/ready", timeout=1)[0] == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            else:
                raise SystemExit("herald did not become ready")
            results = []
            for run in range(args.runs):
                result = run_once(port, process.pid, args.connections, args.idle_timeout)
                results.append(result)
                print(
                    f"run {run + 1}: VmRSS before {result['before'] / 1024:.1f} MiB, "
                    f"{args.connections} open {result['open'] / 1024:.1f} MiB "
                    f"({result['per_connection'] / 1024:.1f} KiB each), "
                    f"closed by the client {result['closed'] / 1024:.1f} MiB (5 s later {result['closed_5s'] / 1024:.1f}), "
                    f"closed by idle_timeout {result['idled_out'] / 1024:.1f} MiB "
                    f"(5 s later {result['idled_out_5s'] / 1024:.1f}; all closed by herald: {result['timed_out']}); "
                    "health while open: "
                    + ", ".join(f"{status} in {seconds * 1000:.1f} ms" for status, seconds in result["health"]),
                    flush=True,
                )
            median = {
                key: statistics.median(result[key] for result in results)
                for key in ("before", "open", "closed", "closed_5s", "idled_out", "idled_out_5s", "per_connection")
            }
            print(
                f"median of {args.runs}: before {median['before'] / 1024:.1f} MiB, open {median['open'] / 1024:.1f} MiB "
                f"(+{(median['open'] - median['before']) / 1024:.1f} MiB, {median['per_connection'] / 1024:.1f} KiB each), "
                f"closed {median['closed'] / 1024:.1f} MiB, 5 s later {median['closed_5s'] / 1024:.1f} MiB, "
                f"idled out {median['idled_out'] / 1024:.1f} MiB, 5 s later {median['idled_out_5s'] / 1024:.1f} MiB"
            )
            failures = [
                f"run {run + 1}: {problem}"
                for run, result in enumerate(results)
                for problem in (
                    [f"health answered {status}" for status, _ in result["health"] if status != 200]
                    + ([] if result["timed_out"] else ["herald did not close every idle connection"])
                )
            ]
            for failure in failures:
                print(f"FAILED {failure}")
            if failures:
                raise SystemExit(1)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


if __name__ == "__main__":
    main()
