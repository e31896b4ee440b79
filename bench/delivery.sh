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
#   BENCH_CONCURRENCIES ["32 4"]    herald's delivery.concurrency in the throughput scenario, one run each
#   BENCH_DEADLINE [300]            seconds a throughput run may take in all
#   BENCH_IDLE [30]                 seconds without a delivery after which a throughput run stops waiting
#   BENCH_RATE [500]                alerts (single-alert posts) per second in the latency scenario
#   BENCH_SECONDS [20]              measured seconds of the latency scenario
#   BENCH_WARMUP [2]                unmeasured seconds before them
#   BENCH_SETTLE [30]               seconds alerts may still arrive after the last send; later ones are missing
#   BENCH_LATENCY_CONCURRENCY [4]   herald's delivery.concurrency in the latency scenario (4 is its default)
#   BENCH_READY_TIMEOUT [30]        seconds herald may take to answer /-/ready
#   BENCH_DIR [/tmp]                where the temp dir (stores, configs, logs) goes; /dev/shm takes fsync out
#   BENCH_BUILD [1]                 0 skips the build
#   BENCH_KEEP [0]                  1 keeps the temp dir (configs, stores, logs, raw outputs)
#   HERALD_BIN [target/release/herald]   the daemon to benchmark
#   HERALD_LOG [warn]               herald's log filter
#
# Quick smoke run: BENCH_RUNS=1 BENCH_ALERTS=2000 BENCH_CONCURRENCIES=32 BENCH_SECONDS=3 BENCH_SETTLE=10 bench/delivery.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

RUNS=${BENCH_RUNS:-3}
ALERTS=${BENCH_ALERTS:-20000}
BATCH=${BENCH_BATCH:-500}
CONCURRENCIES=${BENCH_CONCURRENCIES:-32 4}
DEADLINE=${BENCH_DEADLINE:-300}
IDLE=${BENCH_IDLE:-30}
RATE=${BENCH_RATE:-500}
DURATION=${BENCH_SECONDS:-20}
WARMUP=${BENCH_WARMUP:-2}
SETTLE=${BENCH_SETTLE:-30}
LATENCY_CONCURRENCY=${BENCH_LATENCY_CONCURRENCY:-4}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-30}
BUILD=${BENCH_BUILD:-1}
KEEP=${BENCH_KEEP:-0}
BENCH_DIR=${BENCH_DIR:-/tmp}
HERALD=${HERALD_BIN:-$ROOT/target/release/herald}
BENCH=$ROOT/target/release/herald-bench-delivery
export HERALD_LOG=${HERALD_LOG:-warn}

STOP_TIMEOUT=10 # seconds herald gets to exit after SIGTERM before SIGKILL

die() {
    echo "delivery.sh: $*" >&2
    exit 1
}

for var in BENCH_RUNS BENCH_ALERTS BENCH_BATCH BENCH_DEADLINE BENCH_IDLE BENCH_RATE BENCH_SECONDS BENCH_WARMUP \
    BENCH_SETTLE BENCH_LATENCY_CONCURRENCY BENCH_READY_TIMEOUT; do
    [[ ${!var:-0} =~ ^[0-9]+$ ]] || die "$var must be a whole number, got '${!var}'"
done
[[ $CONCURRENCIES =~ ^[0-9]+( [0-9]+)*$ ]] || die "BENCH_CONCURRENCIES must be whole numbers separated by spaces"
((RUNS >= 1 && RUNS <= 20)) || die "BENCH_RUNS must be between 1 and 20"
for tool in cargo curl python3 git; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

[[ -d $BENCH_DIR ]] || die "BENCH_DIR $BENCH_DIR is not a directory"
WORK=$(mktemp -d "$BENCH_DIR/herald-bench-delivery.XXXXXX")
HERALD_PID=
BENCH_PID=
HERALD_DIR=
URL=
RECEIVER=

# Stops the running herald: SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT.
stop_herald() {
    [[ -n $HERALD_PID ]] || return 0
    if kill -0 "$HERALD_PID" 2>/dev/null; then
        kill -TERM "$HERALD_PID" 2>/dev/null || true
        local tries=$((STOP_TIMEOUT * 10))
        while kill -0 "$HERALD_PID" 2>/dev/null && ((tries-- > 0)); do
            sleep 0.1
        done
        if kill -0 "$HERALD_PID" 2>/dev/null; then
            echo "delivery.sh: herald did not stop within ${STOP_TIMEOUT}s of SIGTERM; killing it" >&2
            kill -KILL "$HERALD_PID" 2>/dev/null || true
        fi
    fi
    wait "$HERALD_PID" 2>/dev/null || true
    HERALD_PID=
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if ((status == 130 || status == 143)); then
        echo "delivery.sh: interrupted" >&2
    fi
    if [[ -n $BENCH_PID ]]; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
    stop_herald
    if ((status != 0)) && [[ -n $HERALD_DIR && -s $HERALD_DIR/herald.log ]]; then
        echo "--- last lines of herald's log ($HERALD_DIR/herald.log) ---" >&2
        tail -n 20 "$HERALD_DIR/herald.log" >&2
    fi
    if [[ $KEEP == 1 ]]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts herald with a fresh store in $WORK/NAME, delivering every alert as its own notification to a webhook on
# a free loopback port, with delivery.concurrency CONCURRENCY; waits until it is ready. Sets HERALD_PID,
# HERALD_DIR, URL and RECEIVER (the address the benchmark's receiver must listen on).
start_herald() {
    local name=$1 concurrency=$2
    HERALD_DIR=$WORK/$name
    mkdir -p "$HERALD_DIR"
    local port receiver_port
    port=$(free_port)
    receiver_port=$(free_port)
    while [[ $receiver_port == "$port" ]]; do
        receiver_port=$(free_port)
    done
    RECEIVER=127.0.0.1:$receiver_port
    cat >"$HERALD_DIR/herald.yaml" <<EOF
server:
  listen: "127.0.0.1:$port"
storage:
  url: "sqlite://$HERALD_DIR/herald.db"
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
    URL=http://127.0.0.1:$port
    "$HERALD" serve -c "$HERALD_DIR/herald.yaml" >>"$HERALD_DIR/herald.log" 2>&1 &
    HERALD_PID=$!

    local deadline=$((SECONDS + READY_TIMEOUT))
    until curl -fsS -o /dev/null --max-time 1 "$URL/-/ready" 2>/dev/null; do
        kill -0 "$HERALD_PID" 2>/dev/null || die "herald exited before it became ready (see its log below)"
        ((SECONDS < deadline)) || die "herald was not ready at $URL/-/ready within ${READY_TIMEOUT}s"
        sleep 0.1
    done
    echo "herald ready at $URL (pid $HERALD_PID, delivery.concurrency $concurrency, receiver $RECEIVER)"
}

# Runs the benchmark binary, keeping its output in $WORK/NAME.out and showing it when it ends. It runs in the
# background so that an interrupt is handled at once rather than after the run.
bench() {
    local name=$1 status=0
    shift
    "$BENCH" "$@" --url "$URL" --listen "$RECEIVER" --herald-pid "$HERALD_PID" >"$WORK/$name.out" 2>&1 &
    BENCH_PID=$!
    wait "$BENCH_PID" || status=$?
    BENCH_PID=
    cat "$WORK/$name.out"
    kill -0 "$HERALD_PID" 2>/dev/null || die "herald (pid $HERALD_PID) is no longer running after the $name run"
    return "$status"
}

if [[ $BUILD == 1 ]]; then
    echo "building release binaries"
    cargo build --release -p herald -p herald-bench-delivery
fi
[[ -x $HERALD ]] || die "no herald binary at $HERALD"
[[ -x $BENCH ]] || die "no benchmark binary at $BENCH (build with: cargo build --release -p herald-bench-delivery)"

for ((run = 1; run <= RUNS; run++)); do
    for concurrency in $CONCURRENCIES; do
        echo
        echo "=== run $run: throughput, delivery.concurrency $concurrency ==="
        start_herald "throughput-c$concurrency-$run" "$concurrency"
        bench "throughput-c$concurrency-$run" throughput --alerts "$ALERTS" --batch "$BATCH" \
            --deadline "${DEADLINE}s" --idle "${IDLE}s" --tag "delivery_concurrency=$concurrency" --tag "run=$run"
        stop_herald
    done
    echo
    echo "=== run $run: latency, $RATE alerts/s, delivery.concurrency $LATENCY_CONCURRENCY ==="
    start_herald "latency-$run" "$LATENCY_CONCURRENCY"
    bench "latency-$run" latency --rate "$RATE" --duration "${DURATION}s" --warmup "${WARMUP}s" \
        --settle "${SETTLE}s" --tag "delivery_concurrency=$LATENCY_CONCURRENCY" --tag "run=$run"
    stop_herald
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (with uncommitted changes)"
fi
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem_total=$(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)

cat <<EOF

## herald delivery benchmark

| | |
|---|---|
| commit | $commit |
| date | $(date -u +%Y-%m-%dT%H:%M:%SZ) |
| machine | $(nproc) CPUs, ${cpu_model:-unknown CPU}, $mem_total RAM, Linux $(uname -r) |
| toolchain | $(rustc --version 2>/dev/null || echo unknown) |
| setup | SQLite store in $BENCH_DIR ($(df -PT "$BENCH_DIR" | awk 'NR == 2 { print $2 }')), one webhook to a loopback receiver answering 200 at once, group_by ['...'], group_wait 0s, benchmark on the same machine |

EOF

WORK=$WORK RUNS=$RUNS SETTLE=$SETTLE CONCURRENCIES=$CONCURRENCIES ALERTS=$ALERTS RATE=$RATE DURATION=$DURATION \
    LATENCY_CONCURRENCY=$LATENCY_CONCURRENCY COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown) \
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
    row(f"  herald CPU (cores busy), concurrency {c}", docs, "probe.herald.cores", "cores")
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
row(f"  herald CPU (cores busy) at {rate} alerts/s", docs, "probe.herald.cores", "cores")

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
