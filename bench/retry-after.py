#!/usr/bin/env python3
"""How exactly herald honours a destination's 429 with Retry-After: when the retry comes, for a delay in seconds and
for an HTTP date (RELIABILITY.md).

Starts herald (release build, a temporary SQLite store, loopback) and one webhook destination run here that answers
the first request of every notification 429 with Retry-After, and 200 after that. Three scenarios run side by side,
each with --count notifications (every alert its own group, group_wait 0s):

  seconds   --count destinations (distinct URLs, so distinct rate-limit keys), one notification each, answered
            `Retry-After: 5`; the wait is from the 429 answer to the retry's arrival.
  date      the same with `Retry-After: <HTTP date 5 s ahead>` (whole seconds, as HTTP dates are); the lateness is
            from that date to the retry's arrival.
  shared    one destination, --count notifications at once, each first answered `Retry-After: 5`: the pause is the
            destination's, so each retry comes 5 s after the last 429 the destination gave.

Checks: no retry before the time asked for; every retry within --max-late seconds of it; every notification
delivered. Prints one JSON line per scenario with min / median / max; exits 1 when a check failed.

    cargo build --release
    bench/retry-after.py [--count 5] [--retry-after 5]
"""

import argparse
import email.utils
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import herald_bench as hb  # noqa: E402


def config(destination, count):
    routes, receivers = [], []
    for scenario, paths in (("seconds", count), ("date", count), ("shared", 1)):
        for i in range(paths):
            name = f"{scenario}{i}" if scenario != "shared" else "shared"
            routes.append(f"    - {{receiver: {name}, matchers: ['dest=\"{name}\"']}}")
            receivers.append(f"  - {{name: {name}, webhook_configs: [{{url: '{destination.url('/' + name)}', "
                             f"send_resolved: false}}]}}")
    return ("route:\n  receiver: shared\n  group_by: [instance]\n  group_wait: 0s\n  routes:\n"
            + "\n".join(routes) + "\nreceivers:\n" + "\n".join(receivers) + "\n")


class Script:
    """First request of each notification (by its alert's instance): 429 with Retry-After; later ones: 200."""

    def __init__(self, retry_after):
        self.retry_after = retry_after
        self.lock = threading.Lock()
        self.limited = {}  # instance -> (monotonic, wall) of the 429 answer, and the date asked for (wall)
        self.retried = {}  # instance -> (monotonic, wall) of the retry's arrival
        self.extra = 0
        self.last_shared_429 = None

    def reply(self, path, payload, received):
        wall = time.time()
        instance = ((payload or {}).get("alerts") or [{}])[0].get("labels", {}).get("instance", "?")
        with self.lock:
            if instance not in self.limited:
                if path.startswith("/date"):
                    date = wall + self.retry_after
                    value = email.utils.formatdate(date, usegmt=True)
                    date = float(int(date))  # an HTTP date has whole seconds
                else:
                    value, date = str(self.retry_after), None
                answered = time.monotonic()
                self.limited[instance] = (answered, wall, date)
                if path == "/shared":
                    self.last_shared_429 = answered
                return 429, [("retry-after", value)]
            if instance in self.retried:
                self.extra += 1
            else:
                self.retried[instance] = (received, wall)
            return 200, []


def summary(name, values, unit_note):
    return {
        "scenario": name, "count": len(values), "measure": unit_note,
        "min_s": round(min(values), 3) if values else None,
        "median_s": round(statistics.median(values), 3) if values else None,
        "max_s": round(max(values), 3) if values else None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5, help="notifications per scenario")
    parser.add_argument("--retry-after", type=int, default=5, help="seconds asked for")
    parser.add_argument("--max-late", type=float, default=1.0, help="a retry later than this past its time fails")
    parser.add_argument("--deadline", type=float, default=60)
    parser.add_argument("--herald", default=hb.DEFAULT_HERALD)
    args = parser.parse_args()
    hb.check_binary(args.herald)
    hb.install_signal_handlers()
    script = Script(args.retry_after)
    destination = hb.Destination(script.reply)
    work = tempfile.mkdtemp(prefix="herald-retry-after.")
    failures = []
    try:
        herald = hb.Herald(args.herald, work, config(destination, args.count)).start()
        alerts, expected = [], []
        for scenario in ("seconds", "date", "shared"):
            for i in range(args.count):
                dest = f"{scenario}{i}" if scenario != "shared" else "shared"
                instance = f"{scenario}-{i}"
                expected.append(instance)
                alerts.append({"labels": {"alertname": "RetryAfter", "instance": instance, "dest": dest},
                               "endsAt": "2100-01-01T00:00:00Z"})
        status, body = hb.post_json(herald.url("/api/v2/alerts"), alerts)
        if status != 200:
            sys.exit(f"posting the alerts was answered {status}: {body[:200]!r}")

        def all_retried():
            with script.lock:
                return all(instance in script.retried for instance in expected)

        hb.wait_until(all_retried, args.deadline)
        herald.stop()
        with script.lock:
            results, waits = [], {"seconds": [], "date": [], "shared": []}
            for instance in expected:
                scenario = instance.split("-")[0]
                if instance not in script.retried:
                    failures.append(f"{instance}: never retried within {args.deadline} s")
                    continue
                (answered, _, date), (arrived, arrived_wall) = script.limited[instance], script.retried[instance]
                if scenario == "seconds":
                    late = arrived - answered - args.retry_after
                    waits[scenario].append(arrived - answered)
                elif scenario == "date":
                    late = arrived_wall - date
                    waits[scenario].append(late)
                else:
                    late = arrived - script.last_shared_429 - args.retry_after
                    waits[scenario].append(arrived - script.last_shared_429)
                if late < -0.001:
                    failures.append(f"{instance}: retried {-late:.3f} s before the time asked for")
                elif late > args.max_late:
                    failures.append(f"{instance}: retried {late:.3f} s after the time asked for")
            if script.extra:
                failures.append(f"{script.extra} notifications delivered more than once")
            results.append(summary("seconds", waits["seconds"],
                                   f"from the 429 (Retry-After: {args.retry_after}) to the retry"))
            results.append(summary("date", waits["date"], "from the HTTP date asked for to the retry"))
            results.append(summary("shared", waits["shared"],
                                   f"from the destination's last 429 (Retry-After: {args.retry_after}) to each retry"))
        for result in results:
            print(json.dumps(result), flush=True)
    finally:
        hb.stop_all()
        destination.stop()
        shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print(f"FAILED {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
