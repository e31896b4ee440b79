"""The summary of bench/vs-alertmanager.sh: reads the JSON result (last line starting with '{') of every run from
$WORK/WORKLOAD-SYSTEM-RUN.out and prints a Markdown table (each measure; Alertmanager's and herald's value in every
run; their medians; herald / Alertmanager and which direction is better) and one `RESULT key=value ...` line.
Settings come from the environment the script passes."""

import json
import os
import statistics

ENV = os.environ
WORK, RUNS = ENV["WORK"], int(ENV["RUNS"])
WORKLOADS, SYSTEMS = ENV["WORKLOADS"].split(), ENV["SYSTEMS"].split()
NAMES = {"alertmanager": "Alertmanager", "herald": "herald"}


def result(workload, system, run):
    """The JSON line of a run's output, or None."""
    try:
        with open(os.path.join(WORK, f"{workload}-{system}-{run}.out")) as f:
            lines = [line for line in f if line.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def get(doc, path):
    if doc is None:
        return None
    if callable(path):
        try:
            return path(doc)
        except (KeyError, TypeError, IndexError, ZeroDivisionError):
            return None
    for key in path.split("."):
        if not isinstance(doc, dict) or doc.get(key) is None:
            return None
        doc = doc[key]
    return doc


def checkpoint(index, key):
    """Field KEY of the INDEX-th checkpoint after the load, when it was watched (or everything had arrived)."""
    def read(doc):
        mark = doc["checkpoints"][index]
        if key == "rss_kib" and not mark["reached"]:
            return None
        return mark[key] if mark["reached"] or doc["stopped"] == "all" else None
    return read


def after_load_rate(doc):
    """Deliveries/s from the end of the load to the last arrival."""
    after = doc["delivered"] - doc["delivered_at_load_end"]
    secs = doc["last_delivery_after_load_s"]
    return after / secs if secs and secs > 0 and after > 0 else None


def fmt(value, unit):
    if value is None:
        return "n/a"
    if unit == "pair":
        return " / ".join(fmt(v, "n") for v in value)
    if unit == "ms-list":
        return " / ".join(fmt(v, "ms") for v in value)
    if unit == "s":
        return f"{value:,.1f} s" if value >= 10 else f"{value:.2f} s"
    if unit == "ms":
        size = abs(value)
        return f"{value:,.0f} ms" if size >= 1000 else f"{value:.1f} ms" if size >= 10 else f"{value:.2f} ms"
    if unit == "MiB":
        return f"{value / 1024:,.1f} MiB"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "%":
        return f"{value:.1f} %"
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def median(values, unit):
    known = [v for v in values if v is not None]
    if not known:
        return None
    if unit in ("pair", "ms-list"):
        columns = [[v[i] for v in known if v[i] is not None] for i in range(len(known[0]))]
        return tuple(statistics.median(c) if c else None for c in columns)
    return statistics.median(known)


def interval(seconds):
    """A group_interval in seconds as the config writes it (5m, 10s)."""
    seconds = int(seconds)
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


marks = [int(m) for m in ENV["OVERLOAD_MARKS"].split()]
batch, posters = ENV["BATCH"], ENV["POSTERS"]
burst = f"{int(ENV['BURST_ALERTS']):,} alerts in {batch}-alert batches, {posters} posters"
overload = (f"{int(ENV['OVERLOAD_ALERTS']):,} alerts over {ENV['OVERLOAD_SECONDS']} s in {batch}-alert batches "
            f"(open loop), group_interval 1s")
delivery_pair = lambda d: (d["missing"], d["duplicates"])  # noqa: E731
refusal_pair = lambda d: (d["non_2xx"], d["retries"])  # noqa: E731

# Workload: (heading, [(label, path, unit, better, result key or None)]); better is "lower", "higher" or None.
SPECS = {
    "burst": (f"Burst: {burst}, group_interval 5m", [
        ("time from the first post until all delivered", "all_delivered_s", "s", "lower", "burst_s"),
        ("deliveries/s, first post to last arrival", "overall_deliveries_per_s", "/s", "higher", None),
        ("peak RSS, sampled VmRSS", "memory.peak_rss_kib", "MiB", "lower", "burst_peak_rss_kib"),
        ("peak RSS, VmHWM at the end", "memory.hwm_kib", "MiB", "lower", None),
        ("alerts not delivered / delivered twice", delivery_pair, "pair", "lower", None),
        ("posts answered non-2xx / retries", refusal_pair, "pair", "lower", None),
        ("CPU of other processes meanwhile, cores (noise)", "probe.others.cores", "noise", None, None),
    ]),
    "burst-1s": (f"Burst: {burst}, group_interval 1s", [
        ("time from the first post until all delivered", "all_delivered_s", "s", "lower", "burst_1s_s"),
        ("deliveries/s, first post to last arrival", "overall_deliveries_per_s", "/s", "higher", None),
        ("peak RSS, sampled VmRSS", "memory.peak_rss_kib", "MiB", "lower", "burst_1s_peak_rss_kib"),
        ("peak RSS, VmHWM at the end", "memory.hwm_kib", "MiB", "lower", None),
        ("alerts not delivered / delivered twice", delivery_pair, "pair", "lower", None),
        ("posts answered non-2xx / retries", refusal_pair, "pair", "lower", None),
        ("CPU of other processes meanwhile, cores (noise)", "probe.others.cores", "noise", None, None),
    ]),
    "overload": (f"Overload: {overload}", [
        ("alerts delivered when the load ended", "delivered_at_load_end", "n", "higher", None),
        *[(f"alerts delivered {m} s after the load", checkpoint(i, "delivered"), "n", "higher",
           f"overload_delivered_{m}s") for i, m in enumerate(marks)],
        ("alerts delivered in all (by the stop)", "delivered", "n", "higher", None),
        ("time after the load until all delivered", "all_delivered_after_load_s", "s", "lower", None),
        ("deliveries/s after the load (its end to the last arrival)", after_load_rate, "/s", "higher", None),
        ("RSS at the end of the load", "rss_at_load_end_kib", "MiB", "lower", None),
        *[(f"RSS {m} s after the load", checkpoint(i, "rss_kib"), "MiB", "lower", None)
          for i, m in enumerate(marks[:1])],
        ("peak RSS, VmHWM", "memory.hwm_kib", "MiB", "lower", "overload_peak_rss_kib"),
        ("post answered p50, from its scheduled send (ingest)", "post_answered.p50_ms", "ms", "lower", None),
        ("post answered p99", "post_answered.p99_ms", "ms", "lower", None),
        ("posts answered non-2xx / retries", refusal_pair, "pair", "lower", None),
        ("batches not sent: in-flight limit reached", "skipped_batches", "n", "lower", None),
        ("alerts finally refused / without a final answer", lambda d: (d["rejected"], d["unsettled"]), "pair",
         "lower", None),
        ("alerts not delivered / delivered twice", delivery_pair, "pair", "lower", None),
        ("CPU of other processes meanwhile, cores (noise)", "probe.others.cores", "noise", None, None),
    ]),
    "resend": (f"Re-sends: single-alert posts, {ENV['RESEND_CONNECTIONS']} connections (closed loop), from "
               f"{int(ENV['RESEND_DISTINCT']):,} recurring alerts", [
        ("accepted posts/s", "posts_per_s", "/s", "higher", "resend_posts_per_s"),
        ("post latency p99", "post_latency.p99_ms", "ms", "lower", None),
        ("server CPU, cores busy", "probe.server.cores", "n2", None, None),
        ("CPU of other processes meanwhile, cores (noise)", "probe.others.cores", "noise", None, None),
    ]),
    "idle": (f"Idle: {int(ENV['IDLE_ALERTS']):,} groups, group_interval {ENV['IDLE_INTERVAL']}s, nothing changing", [
        (f"CPU over {ENV['IDLE_SECONDS']} s, % of one core", "idle.core_percent", "%", "lower", "idle_cpu_percent"),
        ("RSS while idle", "idle.rss_kib", "MiB", "lower", "idle_rss_kib"),
        ("time until every group's first notification arrived", "all_delivered_s", "s", "lower", None),
        ("deliveries while idle (settling and window)",
         lambda d: d["idle"]["deliveries_settling"] + d["idle"]["deliveries_in_window"], "n", "lower", None),
        ("alerts not delivered / delivered twice", delivery_pair, "pair", "lower", None),
        ("CPU of other processes in the window, cores (noise)", "idle.probe.others.cores", "noise", None, None),
    ]),
    "sustained": (f"Sustained: {int(ENV['SUSTAINED_POPULATION']):,} firing alerts preloaded, then "
                  f"{int(ENV['SUSTAINED_RATE']):,} alerts/s in {batch}-alert batches for {ENV['SUSTAINED_SECONDS']} s "
                  f"(open loop) re-sending them, {int(ENV['SUSTAINED_CHURN']):,}/s joining (new groups) and as many "
                  f"resolving; group_interval {interval(ENV['SUSTAINED_INTERVAL'])}", [
        ("alerts accepted/s (2xx)", "accepted_per_s", "/s", "higher", "sustained_accepted_per_s"),
        ("posts answered non-2xx / retries", refusal_pair, "pair", "lower", None),
        ("batches not sent: in-flight limit reached", "skipped_batches", "n", "lower", None),
        ("new alerts, ingest to first notification p50", "new.latency.p50_ms", "ms", "lower", "sustained_new_p50_ms"),
        ("new alerts, ingest to first notification p99", "new.latency.p99_ms", "ms", "lower", "sustained_new_p99_ms"),
        ("new alerts, ingest to first notification max", "new.latency.max_ms", "ms", "lower", None),
        ("resolves, ingest to resolved notification p50 (waits for the group's tick)", "resolves.latency.p50_ms",
         "ms", "lower", None),
        ("resolves, ingest to resolved notification p99", "resolves.latency.p99_ms", "ms", "lower",
         "sustained_resolve_p99_ms"),
        ("resolves, ingest to resolved notification max", "resolves.latency.max_ms", "ms", "lower", None),
        ("resolved notification past its group's tick, p50 / p99 / max (ticks from the alert's first acceptance)",
         lambda d: tuple(d["resolves"]["past_tick"][k] for k in ("p50_ms", "p99_ms", "max_ms")), "ms-list", None,
         None),
        ("not delivered by the stop: new alerts / resolves",
         lambda d: (d["new"]["not_delivered"], d["resolves"]["not_delivered"]), "pair", "lower", None),
        ("delivered twice: firing / resolved", lambda d: (d["duplicates"], d["resolved_duplicates"]), "pair",
         "lower", None),
        ("new alerts never accepted / resolves refused",
         lambda d: (d["new"]["never_accepted"], d["resolves"]["sent"] - d["resolves"]["accepted"]), "pair", "lower",
         None),
        ("alerts joined / left (left: leaves wait until the alert's last re-send was answered)",
         lambda d: (d["joined"], d["left"]), "pair", None, None),
        ("herald_delivery_oldest_open_seconds, max during the load (herald only)", "gauge.max", "s", "lower",
         "sustained_oldest_open_s"),
        ("post answered p99, from its scheduled send (ingest)", "post_answered.p99_ms", "ms", "lower", None),
        ("server CPU during the load, cores busy", "probe.server.cores", "n2", None, "sustained_cpu_cores"),
        ("RSS at the end of the load", "rss_at_load_end_kib", "MiB", "lower", None),
        ("peak RSS, VmHWM", "memory.hwm_kib", "MiB", "lower", "sustained_peak_rss_kib"),
        ("preload: time until every first notification arrived", "preload.all_delivered_s", "s", "lower", None),
        ("CPU of other processes during the load, cores (noise)", "probe.others.cores", "noise", None, None),
    ]),
    "flood": (f"Flood: {int(ENV['FLOOD_RATE']):,} distinct alerts/s (each a new group) in {batch}-alert batches for "
              f"{ENV['FLOOD_SECONDS']} s (open loop), group_interval 5m", [
        ("alerts accepted/s", lambda d: d["accepted"] / d["duration_s"], "/s", "higher", None),
        ("ingest-to-delivery p50", "end_to_end.p50_ms", "ms", "lower", "flood_p50_ms"),
        ("ingest-to-delivery p99", "end_to_end.p99_ms", "ms", "lower", "flood_p99_ms"),
        ("ingest-to-delivery max", "end_to_end.max_ms", "ms", "lower", None),
        ("alerts not delivered when it stopped (counted at the stop above)", "undelivered_counted", "n", "lower",
         None),
        ("post answered p50, from its scheduled send (ingest)", "post_answered.p50_ms", "ms", "lower", None),
        ("post answered p99", "post_answered.p99_ms", "ms", "lower", None),
        ("batches not sent: in-flight limit reached", "skipped_batches", "n", "lower", None),
        ("herald_delivery_oldest_open_seconds, max (herald only)", "gauge.max", "s", "lower",
         "flood_oldest_open_s"),
        ("posts answered non-2xx / retries", refusal_pair, "pair", "lower", None),
        ("peak RSS, VmHWM", "memory.hwm_kib", "MiB", "lower", None),
        ("CPU of other processes meanwhile, cores (noise)", "probe.others.cores", "noise", None, None),
    ]),
    "latency": (f"Latency: single-alert posts at {ENV['LATENCY_RATE']}/s (open loop)", [
        ("ingest-to-delivery p50", "end_to_end.p50_ms", "ms", "lower", "latency_p50_ms"),
        ("ingest-to-delivery p99", "end_to_end.p99_ms", "ms", "lower", "latency_p99_ms"),
        ("ingest-to-delivery max", "end_to_end.max_ms", "ms", "lower", None),
        ("alerts not delivered / delivered twice", delivery_pair, "pair", "lower", None),
        ("CPU of other processes meanwhile, cores (noise)", "probe.others.cores", "noise", None, None),
    ]),
}


def ratio(am, herald, unit):
    if unit in ("pair", "ms-list", "noise") or am is None or herald is None:
        return None
    if am == 0:
        return None
    return herald / am


def ahead(am, herald, better, unit):
    if better is None or unit == "pair" or am is None or herald is None:
        return ""
    if am == herald:
        return "even"
    herald_better = herald < am if better == "lower" else herald > am
    return "herald" if herald_better else "Alertmanager"


header = (["measure", "better"] + [f"{NAMES[s]} runs" for s in SYSTEMS] + [f"{NAMES[s]} median" for s in SYSTEMS]
          + ["herald ÷ Alertmanager", "ahead"])
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
results = {}
for workload in WORKLOADS:
    heading, rows = SPECS[workload]
    print(f"| **{heading}** |" + " |" * (len(header) - 1))
    for label, path, unit, better, key in rows:
        shown = "n" if unit in ("n2", "noise") else unit
        per_system, medians = {}, {}
        for system in SYSTEMS:
            values = [get(result(workload, system, r), path) for r in range(1, RUNS + 1)]
            per_system[system] = values
            medians[system] = median(values, unit)
        am, herald = medians.get("alertmanager"), medians.get("herald")
        r = ratio(am, herald, unit)
        if unit in ("n2", "noise"):
            cells = {s: ", ".join("n/a" if v is None else f"{v:.2f}" for v in per_system[s]) for s in SYSTEMS}
            med = {s: "n/a" if medians[s] is None else f"{medians[s]:.2f}" for s in SYSTEMS}
        else:
            cells = {s: ", ".join(fmt(v, shown) for v in per_system[s]) for s in SYSTEMS}
            med = {s: fmt(medians[s], shown) for s in SYSTEMS}
        row = ([label, better or ""] + [cells[s] for s in SYSTEMS] + [f"**{med[s]}**" for s in SYSTEMS]
               + ["n/a" if r is None else f"{r:,.2f}×", ahead(am, herald, better, unit)])
        print("| " + " | ".join(row) + " |")
        if key:
            results[key] = (am, herald, r)
print()


def plain(value):
    if value is None:
        return "nan"
    return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


fields = []
for key, (am, herald, r) in results.items():
    fields += [f"{key}_am={plain(am)}", f"{key}_herald={plain(herald)}", f"{key}_ratio={plain(r)}"]
print(f"RESULT bench=vs-alertmanager commit={ENV['COMMIT']} sustained_population={ENV['SUSTAINED_POPULATION']} "
      f"sustained_rate={ENV['SUSTAINED_RATE']} sustained_churn={ENV['SUSTAINED_CHURN']} "
      f"flood_rate={ENV['FLOOD_RATE']} " + " ".join(fields))
