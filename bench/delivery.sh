#!/usr/bin/env bash
# Delivery benchmark of herald: webhook deliveries/s to a loopback receiver with no rate limit, and end-to-end
# latency from ingest to delivery (group_wait 0) at a fixed alert rate. Builds release, and for each run and
# scenario starts a fresh herald (SQLite store in a temp dir, one receiver with one webhook to the benchmark's own
# receiver, every alert its own group) on a free loopback port, drives it with bench/delivery, stops it with
# SIGTERM, and ends with a summary table of every run and the medians. See bench/README.md.
#
# Environment (defaults in brackets):
#   BENCH_RUNS [3]                  runs of every scenario (the summary gives each and their median)
#   BENCH_ALERTS [20000]            alerts posted at once in the throughput scenario (each is one delivery)
#   BENCH_BATCH [500]               alerts per request when posting them
#   BENCH_CONCURRENCIES ["64 32"]   herald's delivery.concurrency in the throughput scenario, one run each
#   BENCH_DEADLINE [300]            seconds a throughput run may take in all
#   BENCH_IDLE [30]                 seconds without a delivery after which a throughput run stops waiting
#   BENCH_RATE [500]                alerts (single-alert posts) per second in the latency scenario
#   BENCH_SECONDS [20]              measured seconds of the latency scenario
#   BENCH_WARMUP [2]                unmeasured seconds before them
#   BENCH_SETTLE [30]               seconds alerts may still arrive after the last send; later ones are missing
#   BENCH_LATENCY_CONCURRENCY [32]  herald's delivery.concurrency in the latency scenario (32 is its default)
#   BENCH_READY_TIMEOUT [30]        seconds herald may take to answer /-/ready
#   BENCH_DIR [/tmp]                where the temp dir (stores, configs, logs) goes; /dev/shm takes fsync out
#   BENCH_BUILD [1]                 0 skips the build
#   BENCH_KEEP [0]                  1 keeps the temp dir (configs, stores, logs, raw outputs)
#   HERALD_BIN [target/release/herald]   the daemon to benchmark
#   HERALD_LOG [warn]               herald's log filter
#
# Quick smoke run: BENCH_RUNS=1 BENCH_ALERTS=2000 BENCH_CONCURRENCIES=32 BENCH_SECONDS=3 BENCH_SETTLE=10 bench/delivery.sh
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # moves to the repository root, sets ROOT

RUNS=${BENCH_RUNS:-3}
ALERTS=${BENCH_ALERTS:-20000}
BATCH=${BENCH_BATCH:-500}
CONCURRENCIES=${BENCH_CONCURRENCIES:-64 32}
DEADLINE=${BENCH_DEADLINE:-300}
IDLE=${BENCH_IDLE:-30}
RATE=${BENCH_RATE:-500}
DURATION=${BENCH_SECONDS:-20}
WARMUP=${BENCH_WARMUP:-2}
SETTLE=${BENCH_SETTLE:-30}
LATENCY_CONCURRENCY=${BENCH_LATENCY_CONCURRENCY:-32}
BENCH_DIR=${BENCH_DIR:-/tmp}
BENCH=$ROOT/target/release/herald-bench-delivery

require_whole_numbers BENCH_RUNS BENCH_ALERTS BENCH_BATCH BENCH_DEADLINE BENCH_IDLE BENCH_RATE BENCH_SECONDS \
    BENCH_WARMUP BENCH_SETTLE BENCH_LATENCY_CONCURRENCY BENCH_READY_TIMEOUT
[[ $CONCURRENCIES =~ ^[0-9]+( [0-9]+)*$ ]] || die "BENCH_CONCURRENCIES must be whole numbers separated by spaces"
((RUNS >= 1 && RUNS <= 20)) || die "BENCH_RUNS must be between 1 and 20"
require_tools cargo curl python3 git

[[ -d $BENCH_DIR ]] || die "BENCH_DIR $BENCH_DIR is not a directory"
start_work "$BENCH_DIR/herald-bench-delivery.XXXXXX"
RECEIVER=

# Starts herald (see start_herald) delivering every alert as its own notification to a webhook on a free loopback
# port, with delivery.concurrency CONCURRENCY. Also sets RECEIVER (the address the benchmark's receiver must listen
# on).
start_delivery_herald() {
    local name=$1 concurrency=$2
    local port receiver_port
    port=$(free_port)
    receiver_port=$(free_port)
    while [[ $receiver_port == "$port" ]]; do
        receiver_port=$(free_port)
    done
    RECEIVER=127.0.0.1:$receiver_port
    start_herald "$name" "$port" <<EOF
route:
  receiver: bench
  group_by: ['...']
  group_wait: 0s
  group_interval: 1h
  repeat_interval: 24h
receivers:
  - name: bench
    webhook_configs:
      - url: "http://$RECEIVER/hook"
delivery:
  concurrency: $concurrency
EOF
    echo "herald ready at $URL (pid $HERALD_PID, delivery.concurrency $concurrency, receiver $RECEIVER)"
}

# Runs the benchmark binary with ARGS against the running herald, output kept in $WORK/NAME.out (see run_logged);
# fails if herald did not survive the run.
bench() {
    local name=$1 status=0
    shift
    run_logged "$name" "$BENCH" "$@" --url "$URL" --listen "$RECEIVER" --pid "$HERALD_PID" || status=$?
    require_alive "$name"
    return "$status"
}

build_release -p herald -p herald-bench-delivery
[[ -x $BENCH ]] || die "no benchmark binary at $BENCH (build with: cargo build --release -p herald-bench-delivery)"

for ((run = 1; run <= RUNS; run++)); do
    for concurrency in $CONCURRENCIES; do
        echo
        echo "=== run $run: throughput, delivery.concurrency $concurrency ==="
        start_delivery_herald "throughput-c$concurrency-$run" "$concurrency"
        bench "throughput-c$concurrency-$run" throughput --alerts "$ALERTS" --batch "$BATCH" \
            --deadline "${DEADLINE}s" --idle "${IDLE}s" --tag "delivery_concurrency=$concurrency" --tag "run=$run"
        stop_herald
    done
    echo
    echo "=== run $run: latency, $RATE alerts/s, delivery.concurrency $LATENCY_CONCURRENCY ==="
    start_delivery_herald "latency-$run" "$LATENCY_CONCURRENCY"
    bench "latency-$run" latency --rate "$RATE" --duration "${DURATION}s" --warmup "${WARMUP}s" \
        --settle "${SETTLE}s" --tag "delivery_concurrency=$LATENCY_CONCURRENCY" --tag "run=$run"
    stop_herald
done

summary_head delivery "SQLite store in $BENCH_DIR ($(df -PT "$BENCH_DIR" | awk 'NR == 2 { print $2 }')), one webhook \
to a loopback receiver answering 200 at once, group_by ['...'], group_wait 0s, benchmark on the same machine"

WORK=$WORK RUNS=$RUNS SETTLE=$SETTLE CONCURRENCIES=$CONCURRENCIES ALERTS=$ALERTS RATE=$RATE DURATION=$DURATION \
    LATENCY_CONCURRENCY=$LATENCY_CONCURRENCY COMMIT=$(short_commit) \
    python3 - <<'PY'
import json, os, statistics

work, runs = os.environ["WORK"], int(os.environ["RUNS"])
concurrencies = os.environ["CONCURRENCIES"].split()

def result(name):
    """The JSON line of a run's output, or None."""
    try:
        with open(os.path.join(work, name + ".out")) as f:
            lines = [l for l in f if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None

def get(doc, path):
    if callable(path):
        return path(doc)
    for key in path.split("."):
        if not isinstance(doc, dict) or doc.get(key) is None:
            return None
        doc = doc[key]
    return doc

def fmt(value, unit):
    if value is None:
        return "n/a"
    if unit == "ms":
        return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "cores":
        return f"{value:.2f}"
    if unit == "pair":
        return f"{value[0]:,g} / {value[1]:,g}"
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)

rows, medians = [], {}
def row(label, docs, path, unit, key=None, bold=False):
    values = [get(d, path) if d else None for d in docs]
    known = [v for v in values if v is not None]
    if unit == "pair":
        median = tuple(statistics.median(v[i] for v in known) for i in (0, 1)) if known else None
    else:
        median = statistics.median(known) if known else None
    if key:
        medians[key] = f"{median[0]:g}/{median[1]:g}" if unit == "pair" and median else median
    cell = fmt(median, unit)
    rows.append([label] + [fmt(v, unit) for v in values] + [f"**{cell}**" if bold and known else cell])

for i, c in enumerate(concurrencies):
    docs = [result(f"throughput-c{c}-{r}") for r in range(1, runs + 1)]
    first = i == 0
    row(f"deliveries/s, {os.environ['ALERTS']} alerts, delivery.concurrency {c} (first to last arrival)",
        docs, "deliveries_per_s", "/s", key=f"deliveries_per_s_c{c}", bold=first)
    row(f"  steady (10th-90th percentile arrival), concurrency {c}", docs, "steady_deliveries_per_s", "/s")
    row(f"  herald CPU (cores busy), concurrency {c}", docs, "probe.server.cores", "cores")
    row(f"  outbox backlog, most pending deliveries seen (sampled each second), concurrency {c}", docs,
        "outbox_max_pending", "n")
    row(f"  alerts not delivered / delivered twice, concurrency {c}", docs,
        lambda d: (d["missing"], d["duplicates"]), "pair")
docs = [result(f"latency-{r}") for r in range(1, runs + 1)]
lc, rate = os.environ["LATENCY_CONCURRENCY"], os.environ["RATE"]
row(f"ingest-to-delivery p50 at {rate} alerts/s (concurrency {lc})", docs, "end_to_end.p50_ms", "ms",
    key="latency_p50_ms", bold=True)
row(f"ingest-to-delivery p99 at {rate} alerts/s", docs, "end_to_end.p99_ms", "ms", key="latency_p99_ms", bold=True)
row(f"ingest-to-delivery p90", docs, "end_to_end.p90_ms", "ms")
row(f"ingest-to-delivery p99.9", docs, "end_to_end.p999_ms", "ms")
row(f"ingest-to-delivery max", docs, "end_to_end.max_ms", "ms", key="latency_max_ms")
row(f"  post answered p50 (ingest alone)", docs, "post_answered.p50_ms", "ms")
row(f"  post answered p99", docs, "post_answered.p99_ms", "ms")
row(f"  alerts not delivered within {os.environ['SETTLE']} s / delivered twice", docs,
    lambda d: (d["missing"], d["duplicates"]), "pair", key="latency_missing_duplicates")
row(f"  answer-to-delivery p50 (dispatch, outbox, send)", docs, "answer_to_delivery.p50_ms", "ms")
row(f"  herald CPU (cores busy) at {rate} alerts/s", docs, "probe.server.cores", "cores")

header = ["measure"] + [f"run {r}" for r in range(1, runs + 1)] + ["median"]
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
for r in rows:
    print("| " + " | ".join(r) + " |")
print()
fields = " ".join(f"{k}={'nan' if v is None else round(v, 3) if isinstance(v, float) else v}"
                  for k, v in medians.items())
print(f"RESULT bench=delivery commit={os.environ['COMMIT']} {fields}")
PY
