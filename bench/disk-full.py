#!/usr/bin/env python3
"""A full disk under herald's store, and how soon herald takes alerts again once room is freed (RELIABILITY.md).

Mounts a tmpfs of --size as the store's volume (needs root), starts herald on a free loopback port with its store
there, fills the volume in one of three ways, posts while it is full, frees room and posts a small batch every
200 ms. Prints one line per scenario. Bounded: every loop has a fixed count, every request a timeout. Exits 1 when a
post on the full disk was answered other than 503, or no post was accepted once room was freed.

    cargo build --release && sudo bench/disk-full.py [--herald target/release/herald] [--size 16m]
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

SCENARIOS = {
    "own-wal": "herald's own WAL filled the volume; the volume is then grown by as much again",
    "other-file": "herald took 2,000 alerts, then another file filled the volume; that file is then deleted",
    "tight": "another file left 3 MiB, herald filled it; those 3 MiB are then freed",
}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(base, first, count):
    alerts = [
        {"labels": {"alertname": "Fill", "instance": f"host-{first + i}", "padding": "x" * 200}}
        for i in range(count)
    ]
    request = urllib.request.Request(
        base + "/api/v2/alerts", data=json.dumps(alerts).encode(), headers={"content-type": "application/json"}
    )
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def fill_with_file(path, megabytes=None):
    # Unbuffered: a buffered file would keep the block that did not fit and fail again when closed.
    with open(path, "wb", buffering=0) as file:
        block = b"\0" * 65536
        for _ in range(megabytes * 16 if megabytes else 1 << 20):
            try:
                if file.write(block) < len(block):
                    break
            except OSError:
                break


def run(herald, size, scenario, work):
    volume = os.path.join(work, scenario)
    os.makedirs(volume)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", volume], check=True)
    port = free_port()
    config = os.path.join(work, f"{scenario}.yaml")
    with open(config, "w") as file:
        file.write(f"server: {{listen: 127.0.0.1:{port}}}\nstorage: {{url: 'sqlite://{volume}/herald.db'}}\n")
    log = open(os.path.join(work, f"{scenario}.log"), "w")
    process = subprocess.Popen([herald, "serve", "-c", config], stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/-/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        if scenario == "other-file":
            for i in range(20):
                post(base, i * 100, 100)
                time.sleep(0.1)
            time.sleep(1.5)
            fill_with_file(os.path.join(volume, "filler"))
        elif scenario == "tight":
            fill_with_file(os.path.join(volume, "big"), megabytes=8)
            fill_with_file(os.path.join(volume, "room"), megabytes=3)
        acknowledged, sent = 0, 100_000
        for _ in range(2000):
            status = post(base, sent, 100)
            sent += 100
            if status != 200:
                break
            acknowledged += 100
        while_full = sum(post(base, sent + i * 100, 100) == 503 for i in range(10))
        sent += 1000
        if scenario == "own-wal":
            subprocess.run(["mount", "-o", f"remount,size={2 * int(size.rstrip('m'))}m", volume], check=True)
        elif scenario == "other-file":
            os.remove(os.path.join(volume, "filler"))
        else:
            os.remove(os.path.join(volume, "room"))
        freed = time.monotonic()
        first_ok, accepted = None, 0
        for i in range(50):
            if post(base, sent + i * 10, 10) == 200:
                accepted += 1
                if first_ok is None:
                    first_ok = time.monotonic() - freed
            time.sleep(0.2)
        wal = os.path.getsize(os.path.join(volume, "herald.db-wal"))
        first = f"{first_ok:.2f} s" if first_ok is not None else "never"
        print(
            f"{scenario}: {acknowledged} alerts acknowledged before full; {while_full}/10 posts 503 while full; "
            f"{accepted}/50 posts 200 after freeing, the first {first} after; WAL {wal / 1048576:.1f} MiB at the end"
        )
        failures = []
        if while_full != 10:
            failures.append(f"{10 - while_full} of 10 posts on the full disk were not answered 503")
        if first_ok is None:
            failures.append("no post was accepted once room was freed")
        if process.poll() is not None:
            failures.append(f"herald exited with {process.returncode}")
        return failures
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        subprocess.run(["umount", "-l", volume])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--herald", default="target/release/herald")
    parser.add_argument("--size", default="16m", help="the volume's size, in MiB with an m suffix")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    # SIGTERM (as from `timeout`) unwinds like an exception, so the cleanup in `finally` stops herald.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    failures = []
    with tempfile.TemporaryDirectory() as work:
        for scenario in args.scenarios.split(","):
            print(f"# {SCENARIOS[scenario]}")
            failures += [f"{scenario}: {failure}" for failure in run(args.herald, args.size, scenario, work)]
    for failure in failures:
        print(f"FAILED {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
