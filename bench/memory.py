#!/usr/bin/env python3
"""Whether herald's memory follows its active set: waves of distinct alerts that fire, resolve and are forgotten
(RELIABILITY.md, Memory).

Starts herald (a temporary SQLite store, loopback) with one webhook receiver whose destination is the receiver of
`herald-bench-delivery waves` (Rust: it answers 200 at once and counts every alert's firing and resolved
notifications), every alert its own group (`group_by: [alertname, instance]`, group_wait 0s, repeat_interval 24h,
send_resolved, --group-interval: 60s, in the short form 1s), and retentions of --retention seconds
(`storage.resolved_retention`, `delivery.retention`; herald deletes what is past them once a minute). The bench
binary then runs --waves waves of --alerts distinct alerts each (new label sets every wave): all posted firing
(batches of 100 on 4 connections, 503 and 429 posted again after Retry-After) until every firing notification
arrived; all posted again with endsAt now until every resolved notification arrived; then herald's /metrics is read
until its store is empty (herald_alerts, herald_deliveries, herald_aggregation_groups all 0), and --settle seconds
with nothing happening. herald's VmRSS is read from /proc/PID/status every 200 ms throughout: RSS before each wave,
its peak while firing, while resolving, while retention is awaited and settling, RSS after, VmHWM, and how long each
phase took.

Prints a Markdown table per wave and a last `RESULT key=value ...` line. Exits 1 when a notification is missing or
arrived twice, the store did not empty, or herald died; in the full form also when a goal is not met (unless
--no-goals): peak (VmHWM) under 1200 MiB, RSS after each wave under 300 MiB, no later wave's peak more than 10% above
the first's. `--short` (what scripts/reliability.sh --short runs, on a debug build too): 10,000 alerts per wave,
completeness only, the memory figures printed without goals. The short form takes about 2 minutes whatever the
count: herald deletes what is past retention once a minute, so each wave waits for the next minute.

Why group_interval 60s in the full form: herald ticks every group every group_interval, even with nothing to send.
In a trial with a million groups at 1s, posting them took 206 s and the firing notifications stopped arriving for
2 minutes with 545,000 of them delivered. A resolved notification goes at its group's next tick, so 60s adds at most
a minute to the resolving phase.

    cargo build --release -p herald -p herald-bench-delivery
    bench/memory.py                          # 2 waves of 1,000,000 alerts: about 10-20 minutes
    bench/memory.py --short --herald target/debug/herald

--bench PATH names the bench binary; without it, the script builds it with cargo (`cargo build --locked -p
herald-bench-delivery`, with --release when herald's binary is in a `release` directory) and uses what cargo built.
Loopback only. Every wait is bounded; herald and the bench binary are stopped on exit, on an exception and on
SIGTERM/SIGINT.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import herald_bench as hb  # noqa: E402

BENCH_PACKAGE = "herald-bench-delivery"

# The goals of the full form ("memory follows the active set").
PEAK_GOAL_MIB = 1200
AFTER_GOAL_MIB = 300
GROWTH_GOAL = 0.10

CONFIG = """delivery: {retention: %(retention)ss}
route:
  receiver: bench
  group_by: [alertname, instance]
  group_wait: 0s
  group_interval: %(group_interval)s
  repeat_interval: 24h
receivers:
  - name: bench
    webhook_configs: [{url: "http://%(receiver)s/hook", send_resolved: true}]
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mib(kib):
    return None if kib is None else kib / 1024.0


def fmt_mib(kib):
    return "n/a" if kib is None else f"{kib / 1024.0:,.1f} MiB"


def fmt_s(seconds):
    return "n/a" if seconds is None else f"{seconds:,.1f} s"


def bench_binary(args):
    """The bench binary: --bench, or the one cargo builds in the profile herald's binary comes from."""
    if args.bench:
        if not os.access(args.bench, os.X_OK):
            sys.exit(f"{args.bench} is missing or not executable")
        return args.bench
    if shutil.which("cargo") is None:
        sys.exit(f"cargo is not on PATH: build {BENCH_PACKAGE} and pass --bench PATH")
    release = os.path.basename(os.path.dirname(os.path.abspath(args.herald))) == "release"
    command = ["cargo", "build", "--locked", "-p", BENCH_PACKAGE, "--message-format=json-render-diagnostics"]
    if release:
        command.append("--release")
    print(f"memory: building the bench binary: {' '.join(command)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        built = subprocess.run(command, cwd=hb.ROOT, stdout=subprocess.PIPE, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        sys.exit("building the bench binary took over 30 minutes")
    if built.returncode != 0:
        sys.exit(f"building the bench binary failed (exit {built.returncode})")
    executable = None
    for line in built.stdout.splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("reason") == "compiler-artifact" and message.get("target", {}).get("name") == BENCH_PACKAGE:
            executable = message.get("executable") or executable
    if not executable:
        sys.exit("cargo did not say where it put the bench binary")
    print(f"memory: bench binary {executable} ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    return executable


def run_bench(command, limit):
    """Runs the bench binary (its lines shown as they come); returns (exit code or None when stopped at the limit,
    its result or None). Without a final result (the binary stopped early), the result holds the waves that ended."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=None, text=True,
                               preexec_fn=hb._die_with_parent)
    hb._children.append(process)
    last = []
    ended = []

    def pump():
        for line in process.stdout:
            line = line.rstrip("\n")
            if not line.startswith("{"):
                print(line, flush=True)
                continue
            try:
                value = json.loads(line)
            except ValueError:
                print(line, flush=True)
                continue
            if "wave_result" in value:
                ended.append(value["wave_result"])
            else:
                last[:] = [value]

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        code = None
    hb.stop(process)
    reader.join(timeout=10)
    if last:
        return code, last[0]
    if ended:
        return code, {"waves": ended, "failures": ["the bench binary stopped before its result; the waves that "
                                                   "ended are shown"]}
    return code, None


def table(result):
    rows = [
        "| wave | alerts | RSS before | peak firing | peak resolving | peak awaiting retention | peak settling "
        "| RSS after | VmHWM after | firing: posted / all notified | resolving: posted / all notified "
        "| retention wait | settle |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for wave in result.get("waves", []):
        firing = wave.get("firing", {})
        resolving = wave.get("resolving", {})
        retention = wave.get("retention", {})
        settle = wave.get("settle", {})
        rows.append(
            f"| {wave['wave']} | {wave['alerts']:,} | {fmt_mib(wave.get('rss_before_kib'))} "
            f"| **{fmt_mib(firing.get('peak_rss_kib'))}** | {fmt_mib(resolving.get('peak_rss_kib'))} "
            f"| {fmt_mib(retention.get('peak_rss_kib'))} | {fmt_mib(settle.get('peak_rss_kib'))} "
            f"| **{fmt_mib(wave.get('rss_after_kib'))}** | {fmt_mib(wave.get('hwm_kib'))} "
            f"| {fmt_s(firing.get('post_s'))} / {fmt_s(firing.get('s'))} "
            f"| {fmt_s(resolving.get('post_s'))} / {fmt_s(resolving.get('s'))} "
            f"| {fmt_s(retention.get('s'))} | {fmt_s(settle.get('s'))} |")
    return "\n".join(rows)


def completeness(result, alerts, waves):
    """What did not hold, whatever the form: every notification once, the store emptied, herald alive."""
    failures = list(result.get("failures", []))
    done = result.get("waves", [])
    if len(done) < waves:
        failures.append(f"only {len(done)} of {waves} waves ran")
    for wave in done:
        for phase in ("firing", "resolving"):
            figures = wave.get(phase)
            if figures is None:
                failures.append(f"wave {wave['wave']}: no {phase} phase")
            elif figures.get("notified") != alerts and not any(f"wave {wave['wave']}:" in f for f in failures):
                failures.append(f"wave {wave['wave']}: {figures.get('notified')} of {alerts} {phase} notified")
        if "rss_after_kib" not in wave:
            failures.append(f"wave {wave['wave']}: did not finish")
    return list(dict.fromkeys(failures))


def goals(result):
    """(description, met, detail) for each goal of the full form."""
    waves = result.get("waves", [])
    peaks = [wave.get("peak_rss_kib") or 0 for wave in waves]
    peak = max([result.get("hwm_kib") or 0] + peaks)
    checks = [(f"peak RSS (VmHWM) under {PEAK_GOAL_MIB} MiB", peak < PEAK_GOAL_MIB * 1024,
               f"{fmt_mib(peak)}")]
    afters = [wave.get("rss_after_kib") for wave in waves]
    checks.append((f"RSS after each wave (resolved, past retention, settled) under {AFTER_GOAL_MIB} MiB",
                   bool(afters) and all(a is not None and a < AFTER_GOAL_MIB * 1024 for a in afters),
                   ", ".join(fmt_mib(a) for a in afters)))
    if len(peaks) > 1 and peaks[0]:
        growth = max(peaks[1:]) / peaks[0] - 1
        checks.append((f"no later wave's peak more than {GROWTH_GOAL:.0%} above the first's",
                       growth <= GROWTH_GOAL,
                       f"{' / '.join(fmt_mib(p) for p in peaks)} ({growth:+.1%})"))
    return checks


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--herald", default=hb.DEFAULT_HERALD)
    parser.add_argument("--bench", help=f"the {BENCH_PACKAGE} binary (default: built with cargo)")
    parser.add_argument("--short", action="store_true",
                        help="the short form: 10,000 alerts per wave, completeness checks only (no memory goals)")
    parser.add_argument("--alerts", type=int, help="distinct alerts per wave (default 1,000,000; short: 10,000)")
    parser.add_argument("--waves", type=int, default=2)
    parser.add_argument("--retention", type=int, default=2,
                        help="storage.resolved_retention and delivery.retention, seconds")
    parser.add_argument("--group-interval", help="the route's group_interval (default 60s; short: 1s)")
    parser.add_argument("--settle", type=float, help="seconds after the store emptied (default 10; short: 3)")
    parser.add_argument("--deadline", type=float,
                        help="seconds for posting one phase and its notifications (default 1800; short: 300)")
    parser.add_argument("--no-goals", action="store_true", help="report the goals but do not fail on them")
    parser.add_argument("--out", help="write the bench binary's JSON result (with the RSS timeline) here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (config, store, log)")
    args = parser.parse_args()
    alerts = args.alerts or (10_000 if args.short else 1_000_000)
    settle = args.settle if args.settle is not None else (3 if args.short else 10)
    deadline = args.deadline or (300 if args.short else 1800)
    idle = 60 if args.short else 120
    retention_wait = 150 if args.short else 300
    group_interval = args.group_interval or ("1s" if args.short else "60s")
    if alerts <= 0 or args.waves <= 0 or args.retention < 0:
        sys.exit("--alerts and --waves must be positive, --retention not negative")

    hb.check_binary(args.herald)
    hb.install_signal_handlers()
    bench = bench_binary(args)
    work = tempfile.mkdtemp(prefix="herald-memory.")
    started = time.monotonic()
    failures = []
    result = None
    try:
        receiver = f"127.0.0.1:{free_port()}"
        config = CONFIG % {"retention": args.retention, "group_interval": group_interval, "receiver": receiver}
        herald = hb.Herald(args.herald, work, config, storage=f"resolved_retention: {args.retention}s")
        herald.start()
        pid = herald.process.pid
        print(f"memory: herald {args.herald} pid {pid} at {herald.url('')}; {args.waves} waves of {alerts:,} "
              f"alerts; group_interval {group_interval}; retention {args.retention} s; work dir {work}", flush=True)
        command = [
            bench, "waves", "--url", herald.url(""), "--listen", receiver, "--pid", str(pid),
            "--waves", str(args.waves), "--alerts", str(alerts), "--batch", "100", "--concurrency", "4",
            "--retry-attempts", "10000", "--retry-max-wait", "5s",
            "--deadline", f"{deadline}s", "--idle", f"{idle}s", "--retention-wait", f"{retention_wait}s",
            "--metrics-every", "2s" if args.short else "5s", "--settle", f"{settle}s", "--sample-every", "200ms",
        ]
        limit = args.waves * (2 * deadline + retention_wait + settle + 60) + 60
        code, result = run_bench(command, limit)
        if code is None:
            failures.append(f"the bench binary was stopped after {limit:.0f} s")
        if herald.process.poll() is not None:
            failures.append(f"herald died (exit {herald.process.returncode})")
        herald.stop()
        with open(os.path.join(work, f"{herald.name}.{herald.starts}.log"), errors="replace") as log:
            panics = sum(1 for line in log if "panicked" in line)
        if panics:
            failures.append(f"herald's log has {panics} panics")
    finally:
        hb.stop_all()
        if args.keep:
            print(f"memory: kept {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)

    if result is None:
        failures.append("the bench binary gave no result")
        result = {}
    if args.out:
        with open(args.out, "w") as out:
            json.dump(result, out)
    failures = completeness(result, alerts, args.waves) + failures if result else failures
    elapsed = time.monotonic() - started

    print()
    print(table(result))
    print()
    timeline = result.get("timeline_peak_kib_per_s", [])
    if timeline:
        steps = [max(timeline[i:i + 10]) for i in range(0, len(timeline), 10)]
        print("RSS, peak of every 10 s (MiB): " + " ".join(f"{s / 1024:.0f}" for s in steps))
    arrivals = result.get("timeline_notifications_per_s", [])
    if arrivals:
        steps = [sum(arrivals[i:i + 10]) for i in range(0, len(arrivals), 10)]
        print("notifications arrived, every 10 s: " + " ".join(str(s) for s in steps))
    print(f"notified twice: {result.get('duplicates_firing', 'n/a')} firing, "
          f"{result.get('duplicates_resolved', 'n/a')} resolved; multi-alert notifications "
          f"{result.get('multi_alert_deliveries', 'n/a')}; foreign {result.get('foreign', 'n/a')}; "
          f"VmHWM at the end {fmt_mib(result.get('hwm_kib'))}; {elapsed:.0f} s in all")

    goal_lines = [] if args.short else goals(result)
    for description, met, detail in goal_lines:
        print(f"goal {'met' if met else 'NOT MET'}: {description}: {detail}")
    goals_met = all(met for _, met, _ in goal_lines)
    for failure in failures:
        print(f"FAILED: {failure}")

    waves = result.get("waves", [])
    fields = {
        "bench": "memory",
        "form": "short" if args.short else "full",
        "waves": len(waves),
        "alerts": alerts,
        "hwm_mib": f"{mib(result.get('hwm_kib')) or 0:.1f}",
        "peak_mib": ",".join(f"{mib(w.get('peak_rss_kib')) or 0:.1f}" for w in waves),
        "after_mib": ",".join(f"{mib(w.get('rss_after_kib')) or 0:.1f}" for w in waves),
        "complete": "no" if failures else "yes",
        "goals": "unchecked" if args.short else ("met" if goals_met else "not_met"),
        "seconds": f"{elapsed:.0f}",
    }
    print("RESULT " + " ".join(f"{key}={value}" for key, value in fields.items()), flush=True)
    if failures or (not args.short and not goals_met and not args.no_goals):
        sys.exit(1)


if __name__ == "__main__":
    main()
