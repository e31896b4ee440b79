#!/usr/bin/env python3
"""herald killed with SIGKILL under load, then started again on the same store: every acknowledged alert is still
notified, and only sends whose outcome herald had not recorded are made twice (RELIABILITY.md).

For each run: starts herald (release build, a temporary SQLite store, loopback) with one webhook receiver, every alert
its own group (group_wait 0s), and a destination run here that answers 200 after --hold-ms and counts the
notifications of every alert. Several posters send distinct alerts (single alerts and batches of 2-100) to one
ingest endpoint at about --rate alerts/s in all; at a random moment (seeded) between --kill-after bounds, herald gets
SIGKILL. A copy of the store as the kill left it tells which deliveries were recorded as delivered, and which were
claimed for sending (in_flight) without an outcome. herald is started again on the same store, and the run ends once
every acknowledged alert was notified and the outbox is empty (at most --deadline seconds).

Checks, per run: 0 acknowledged (2xx) alerts lost; only alerts whose notification the killed herald had sent without
recording the outcome (received by the destination before the kill, delivery not `delivered` in the store) are
notified twice, so duplicates <= sends in flight at the kill; no notification of an alert nobody posted. Reported
too: how many such sends there were and how many were not sent again (expected 0: at-least-once).

Kinds: `v2` posts to /api/v2/alerts (Prometheus's and amtool's body), `alertmanager` to /webhook/alertmanager
(Alertmanager's webhook payload, version 4).

    cargo build --release
    bench/kill9.py [--kinds v2,alertmanager] [--runs 3] [--seed 1] [--rate 3000] [--posters 4]

Prints one line per run and a table; exits 1 when a check failed.
"""

import argparse
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import herald_bench as hb  # noqa: E402

CONFIG = """route: {receiver: hook, group_by: [instance], group_wait: 0s, group_interval: 5m, repeat_interval: 24h}
receivers:
  - name: hook
    webhook_configs: [{url: "%s", send_resolved: false}]
"""


def now_rfc3339():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def body_for(kind, tag, seqs):
    starts = now_rfc3339()
    if kind == "v2":
        return [
            {"labels": {"alertname": "Kill9", "instance": f"{tag}-{seq}", "seq": str(seq)},
             "annotations": {"summary": "posted under load"}, "startsAt": starts, "endsAt": "2100-01-01T00:00:00Z"}
            for seq in seqs
        ]
    return {
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing", "receiver": "herald",
        "groupLabels": {}, "commonLabels": {"alertname": "Kill9"}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid:9093",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "Kill9", "instance": f"{tag}-{seq}", "seq": str(seq)},
             "annotations": {"summary": "posted under load"}, "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "", "fingerprint": ""}
            for seq in seqs
        ],
    }


class Counts:
    """What the destination received: notifications per alert (by its `seq` label) and the group keys seen."""

    def __init__(self, tag, hold):
        self.tag = tag
        self.hold = hold
        self.lock = threading.Lock()
        self.per_seq = {}
        self.group_of_seq = {}
        self.requests = 0
        self.strangers = 0
        self.restarted = False
        self.before_restart = set()  # alerts whose notification arrived from the herald that was killed
        self.after_restart = {}  # alert -> monotonic time of its first notification from the restarted herald

    def reply(self, _path, payload, _received):
        # Counted on arrival: a request the kill cut off before its answer was still sent.
        with self.lock:
            self.requests += 1
            for alert in (payload or {}).get("alerts", []):
                labels = alert.get("labels", {})
                if not labels.get("instance", "").startswith(self.tag + "-"):
                    self.strangers += 1
                    continue
                seq = int(labels["seq"])
                self.per_seq[seq] = self.per_seq.get(seq, 0) + 1
                self.group_of_seq[seq] = payload.get("groupKey")
                if not self.restarted:
                    self.before_restart.add(seq)
                elif seq not in self.after_restart:
                    self.after_restart[seq] = time.monotonic()
        if self.hold:
            time.sleep(self.hold)
        return 200, []


def snapshot(db, into):
    """Copies the store as the kill left it (database and WAL) and reads the deliveries' states from the copy, so
    the store herald starts again on is untouched."""
    os.makedirs(into)
    copy = os.path.join(into, "herald.db")
    for suffix in ("", "-wal"):
        if os.path.exists(db + suffix):
            shutil.copyfile(db + suffix, copy + suffix)
    connection = sqlite3.connect(copy)
    try:
        rows = connection.execute("SELECT group_key, state FROM deliveries").fetchall()
    finally:
        connection.close()
    states = {}
    for group_key, state in rows:
        states[group_key] = state
    return states


def outbox_empty(herald):
    for state in ("pending", "in_flight"):
        status, body = hb.get(herald.url(f"/api/herald/v1/deliveries?state={state}&limit=1"))
        if status != 200 or json.loads(body)["deliveries"]:
            return False
    return True


def run_once(args, kind, run, rng):
    tag = f"k9-{kind}-{run}-{os.getpid()}"
    counts = Counts(tag, args.hold_ms / 1000)
    destination = hb.Destination(counts.reply)
    work = tempfile.mkdtemp(prefix="herald-kill9.")
    herald = hb.Herald(args.herald, work, CONFIG % destination.url())
    try:
        herald.start()
        path = "/api/v2/alerts" if kind == "v2" else "/webhook/alertmanager"
        lock = threading.Lock()
        next_seq = [0]
        acked, refused, unanswered = set(), set(), set()
        stop = threading.Event()
        url = herald.url(path)
        started = time.monotonic()
        load_end = started + args.kill_after[1] + 5  # posters stop by themselves even if the kill never came

        def poster(index):
            prng = random.Random(rng.random())
            share = args.rate / args.posters
            sent = 0
            while not stop.is_set() and time.monotonic() < load_end:
                size = 1 if prng.random() < 0.3 else prng.randint(2, 100)
                with lock:
                    seqs = list(range(next_seq[0], next_seq[0] + size))
                    next_seq[0] += size
                status, _ = hb.post_json(url, body_for(kind, tag, seqs), timeout=10)
                with lock:
                    (acked if 200 <= status < 300 else unanswered if status == 0 else refused).update(seqs)
                sent += size
                # Open loop per poster: the next post when its share of the rate says so.
                due = started + sent / share
                pause = due - time.monotonic()
                if pause > 0:
                    stop.wait(pause)

        threads = [threading.Thread(target=poster, args=(i,), daemon=True) for i in range(args.posters)]
        for thread in threads:
            thread.start()
        kill_at = rng.uniform(*args.kill_after)
        stop.wait(kill_at)
        with counts.lock:
            received_before = counts.requests
            notified_before = len(counts.per_seq)
        in_progress = destination.in_progress
        herald.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        states = snapshot(herald.db, os.path.join(work, "at-kill"))
        in_flight = {key for key, state in states.items() if state == "in_flight"}
        pending = sum(1 for state in states.values() if state == "pending")
        delivered_at_kill = sum(1 for state in states.values() if state == "delivered")

        with counts.lock:
            counts.restarted = True
            sent_before = set(counts.before_restart)
        # Sent by the killed herald without a recorded outcome: each must be sent again, and nothing else may be.
        unrecorded = {seq for seq in sent_before if states.get(counts.group_of_seq.get(seq)) != "delivered"}
        restarted = time.monotonic()
        herald.start()

        def settled():
            with counts.lock:
                missing = [seq for seq in acked if seq not in counts.per_seq]
            return not missing and outbox_empty(herald)

        done = hb.wait_until(settled, args.deadline, step=0.1)
        caught_up = time.monotonic() - restarted

        def last_after_restart(leased):
            times = [at for seq, at in counts.after_restart.items()
                     if (states.get(counts.group_of_seq.get(seq)) == "in_flight") == leased]
            return round(max(times) - restarted, 2) if times else None

        with counts.lock:
            lost = sorted(seq for seq in acked if seq not in counts.per_seq)
            duplicated = {seq: n for seq, n in counts.per_seq.items() if n > 1}
            extra_sends = sum(n - 1 for n in duplicated.values())
            unexplained = [seq for seq in duplicated if seq not in unrecorded]
            not_resent = [seq for seq in unrecorded if seq not in duplicated]
            unacked_notified = sum(1 for seq in unanswered | refused if seq in counts.per_seq)
            strangers = counts.strangers
        result = {
            "kind": kind, "run": run, "kill_after_s": round(kill_at, 2),
            "posted": next_seq[0], "acknowledged": len(acked), "refused": len(refused),
            "unanswered_at_kill": len(unanswered), "unanswered_notified_anyway": unacked_notified,
            "notified_before_kill": notified_before, "requests_before_kill": received_before,
            "destination_in_progress_at_kill": in_progress,
            "store_at_kill": {"delivered": delivered_at_kill, "in_flight": len(in_flight), "pending": pending},
            "sent_unrecorded_at_kill": len(unrecorded),
            "lost": len(lost), "duplicated_alerts": len(duplicated), "extra_sends": extra_sends,
            "duplicates_recorded_delivered": len(unexplained), "unrecorded_not_resent": len(not_resent),
            "strangers": strangers,
            "caught_up_s": round(caught_up, 2), "settled": bool(done),
            # From the restart to the last notification of alerts whose delivery was claimed (in_flight, leased)
            # at the kill, and of the others (pending, or not queued yet).
            "last_leased_after_restart_s": last_after_restart(True),
            "last_other_after_restart_s": last_after_restart(False),
        }
        failures = []
        if lost:
            failures.append(f"{len(lost)} acknowledged alerts never notified (first: {lost[:5]})")
        if unexplained:
            failures.append(f"{len(unexplained)} alerts notified twice whose delivery was recorded before the kill")
        if extra_sends > len(unrecorded):
            failures.append(f"{extra_sends} repeated sends > {len(unrecorded)} sends in flight at the kill")
        if strangers:
            failures.append(f"{strangers} notified alerts nobody posted")
        if not done:
            failures.append(f"not settled within {args.deadline} s")
        if not acked:
            failures.append("no alert acknowledged before the kill: the load never started")
        result["failures"] = failures
        return result
    finally:
        herald.stop()
        destination.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="v2,alertmanager")
    parser.add_argument("--runs", type=int, default=3, help="runs per kind")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=3000, help="alerts/s posted, all posters together")
    parser.add_argument("--posters", type=int, default=4)
    parser.add_argument("--kill-after", type=float, nargs=2, default=[1.0, 4.0], metavar=("MIN", "MAX"),
                        help="the kill comes at a random moment between these seconds after the load starts")
    parser.add_argument("--hold-ms", type=float, default=5, help="the destination answers after this long")
    parser.add_argument("--deadline", type=float, default=120, help="seconds after the restart to settle")
    parser.add_argument("--herald", default=hb.DEFAULT_HERALD)
    parser.add_argument("--keep", action="store_true", help="keep the work directories (stores, logs)")
    args = parser.parse_args()
    hb.check_binary(args.herald)
    hb.install_signal_handlers()
    rng = random.Random(args.seed)
    results = []
    try:
        for kind in args.kinds.split(","):
            if kind not in ("v2", "alertmanager"):
                sys.exit(f"unknown kind {kind!r}: v2 or alertmanager")
            for run in range(1, args.runs + 1):
                result = run_once(args, kind, run, rng)
                print(json.dumps(result), flush=True)
                results.append(result)
    finally:
        hb.stop_all()
    print()
    print("| kind | run | kill at | acknowledged | unanswered at kill | delivered at kill | claimed (in_flight) "
          "at kill | sent, outcome unrecorded | lost | duplicated | last notification after restart: claimed at "
          "the kill / others |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in results:
        print(f"| {r['kind']} | {r['run']} | {r['kill_after_s']:.2f} s | {r['acknowledged']:,} "
              f"| {r['unanswered_at_kill']:,} | {r['store_at_kill']['delivered']:,} "
              f"| {r['store_at_kill']['in_flight']} | {r['sent_unrecorded_at_kill']} | {r['lost']} "
              f"| {r['duplicated_alerts']} "
              f"| {r['last_leased_after_restart_s']} s / {r['last_other_after_restart_s']} s |")
    failed = [(r["kind"], r["run"], f) for r in results for f in r["failures"]]
    for kind, run, failure in failed:
        print(f"FAILED {kind} run {run}: {failure}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
