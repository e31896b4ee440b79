#!/usr/bin/env python3
"""Catch-up after a destination outage: how long after a webhook destination comes back until every notification
queued while it was down has arrived.

Starts herald (target/release/herald, a temp SQLite store, a free loopback port) with one webhook receiver whose
destination is an emulator on another free loopback port, posts N alerts (each its own group, group_wait 0) while the
destination is down, keeps it down for OUTAGE seconds, brings it back, and reports the time from its return to the
last delivery. Two kinds of outage: `500` (the emulator answers 500) and `refused` (nothing listens on its port).
Loopback only; stops by itself (at most OUTAGE + DEADLINE seconds per kind) and stops herald with SIGTERM. Exits 1
when a notification was not delivered, or was delivered twice.

Usage: bench/catchup.py [--kinds 500,refused] [--alerts 50] [--outage 60] [--deadline 180]
Build first: cargo build --release
"""

import argparse
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """A webhook destination: answers 500 while down, 200 once up, and records when each 200 was answered."""

    def __init__(self, port):
        self.port = port
        self.up = False
        self.delivered = {}  # group key -> monotonic time of its first 200
        self.duplicates = 0
        self.failed = 0
        self.lock = threading.Lock()
        self.server = None

    def start(self):
        emulator = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with emulator.lock:
                    if not emulator.up:
                        emulator.failed += 1
                        code = 500
                    else:
                        code = 200
                        try:
                            key = json.loads(body).get("groupKey", "")
                        except ValueError:
                            key = ""
                        if key in emulator.delivered:
                            emulator.duplicates += 1
                        else:
                            emulator.delivered[key] = time.monotonic()
                self.send_response(code)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True
            # The default backlog (5) drops connections herald opens at once, and their SYN retries add seconds.
            request_queue_size = 1024

        self.server = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def wait_ready(port, deadline):
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("herald did not become ready")


def run(kind, alerts, outage, deadline, herald_bin):
    work = tempfile.mkdtemp(prefix="herald-catchup.")
    port, hook = free_port(), free_port()
    config = os.path.join(work, "herald.yaml")
    with open(config, "w") as f:
        f.write(f"""server: {{listen: "127.0.0.1:{port}"}}
storage: {{url: "sqlite://{work}/herald.db"}}
route: {{receiver: hook, group_by: [alertname], group_wait: 0s}}
receivers:
  - name: hook
    webhook_configs: [{{url: "http://127.0.0.1:{hook}/hook"}}]
""")
    emulator = Emulator(hook)
    if kind == "500":
        emulator.start()
    log = open(os.path.join(work, "herald.log"), "w")
    env = dict(os.environ, HERALD_LOG=os.environ.get("HERALD_LOG", "info"))
    herald = subprocess.Popen([herald_bin, "serve", "-c", config], stdout=log, stderr=log, env=env)
    try:
        wait_ready(port, time.monotonic() + 30)
        payload = json.dumps([
            {"labels": {"alertname": f"Outage{i:04d}"}, "endsAt": "2100-01-01T00:00:00Z"}
            for i in range(alerts)
        ]).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v2/alerts", data=payload,
            headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 200, r.status
        time.sleep(outage)
        back = time.monotonic()
        if kind == "500":
            with emulator.lock:
                emulator.up = True
        else:
            emulator.up = True
            emulator.start()
        end = back + deadline
        while time.monotonic() < end:
            with emulator.lock:
                if len(emulator.delivered) >= alerts:
                    break
            time.sleep(0.05)
        with emulator.lock:
            times = sorted(emulator.delivered.values())
            result = {
                "kind": kind,
                "alerts": alerts,
                "outage_s": outage,
                "delivered": len(times),
                "duplicates": emulator.duplicates,
                "failed_answers_500": emulator.failed,
                "first_after_return_s": round(times[0] - back, 2) if times else None,
                "last_after_return_s": round(times[-1] - back, 2) if times else None,
            }
        return result
    finally:
        herald.send_signal(signal.SIGTERM)
        try:
            herald.wait(timeout=30)
        except subprocess.TimeoutExpired:
            herald.kill()
        emulator.stop()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="500,refused")
    parser.add_argument("--alerts", type=int, default=50)
    parser.add_argument("--outage", type=int, default=60)
    parser.add_argument("--deadline", type=int, default=180)
    parser.add_argument("--herald", default=os.path.join(ROOT, "target/release/herald"))
    args = parser.parse_args()
    # SIGTERM (as from `timeout`) unwinds like an exception, so the cleanup in `finally` stops herald.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    if not os.access(args.herald, os.X_OK):
        sys.exit(f"{args.herald} is missing: build it with cargo build --release")
    failed = []
    for kind in args.kinds.split(","):
        if kind not in ("500", "refused"):
            sys.exit(f"unknown kind {kind!r}: 500 or refused")
        result = run(kind, args.alerts, args.outage, args.deadline, args.herald)
        print(json.dumps(result), flush=True)
        if result["delivered"] != args.alerts:
            failed.append(f"{kind}: {result['delivered']} of {args.alerts} notifications delivered")
        if result["duplicates"]:
            failed.append(f"{kind}: {result['duplicates']} notifications delivered twice")
    for failure in failed:
        print(f"FAILED {failure}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
