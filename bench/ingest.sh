#!/usr/bin/env bash
# Ingest benchmark of herald: closed-loop throughput, open-loop latency, and resident memory with 100,000 active
# alerts. Builds release, runs herald on a free loopback port with a SQLite store in a temp dir and a receiver with
# no integrations, drives it with bench/loadgen, and prints a summary table. See bench/README.md.
#
# Environment (defaults in brackets):
#   BENCH_SECONDS [20]          measured seconds of the throughput and latency runs
#   BENCH_WARMUP [2]            unmeasured warm-up seconds before each of them
#   BENCH_BATCH [100]           alerts per request in the throughput run
#   BENCH_CONCURRENCY [8]       workers in the throughput run
#   BENCH_DISTINCT [100000]     alert population the throughput and latency runs draw from
#   BENCH_RATE [1000]           requests per second in the latency run
#   BENCH_ALERTS [100000]       distinct active alerts loaded for the memory measurement
#   BENCH_LOAD_BATCH [500]      alerts per request when loading them
#   BENCH_SETTLE [5]            seconds to wait after loading before reading memory
#   BENCH_READY_TIMEOUT [30]    seconds herald may take to answer /-/ready
#   BENCH_BUILD [1]             0 skips `cargo build --release --workspace`
#   BENCH_KEEP [0]              1 keeps the temp dir (configs, stores, logs, raw outputs)
#   HERALD_BIN [target/release/herald]   the daemon to benchmark
#   HERALD_LOG [warn]           herald's log filter
#
# Quick smoke run: BENCH_SECONDS=3 BENCH_WARMUP=1 BENCH_ALERTS=10000 bench/ingest.sh
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # moves to the repository root, sets ROOT

DURATION=${BENCH_SECONDS:-20}
WARMUP=${BENCH_WARMUP:-2}
BATCH=${BENCH_BATCH:-100}
CONCURRENCY=${BENCH_CONCURRENCY:-8}
DISTINCT=${BENCH_DISTINCT:-100000}
RATE=${BENCH_RATE:-1000}
ALERTS=${BENCH_ALERTS:-100000}
LOAD_BATCH=${BENCH_LOAD_BATCH:-500}
SETTLE=${BENCH_SETTLE:-5}
LOADGEN=$ROOT/target/release/herald-loadgen

require_whole_numbers BENCH_SECONDS BENCH_WARMUP BENCH_BATCH BENCH_CONCURRENCY BENCH_DISTINCT BENCH_RATE BENCH_ALERTS \
    BENCH_LOAD_BATCH BENCH_SETTLE BENCH_READY_TIMEOUT
require_tools cargo curl python3 git

start_work /tmp/herald-bench.XXXXXX

# Starts herald (see start_herald) with a receiver without integrations, so routing runs but nothing is sent.
start_ingest_herald() {
    start_herald "$1" "$(free_port)" <<EOF
route:
  receiver: blackhole
receivers:
  - name: blackhole
EOF
    echo "herald ready at $URL (pid $HERALD_PID, store $HERALD_DIR/herald.db)"
}

# Runs the load generator with ARGS, output kept in $WORK/NAME.out (see run_logged).
loadgen() {
    local name=$1
    shift
    echo
    run_logged "$name" "$LOADGEN" "$@"
}

# Value of KEY in the RESULT line of $WORK/NAME.out.
result() {
    grep '^RESULT ' "$WORK/$1.out" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# A field of /proc/PID/status in kB (e.g. VmRSS, VmHWM).
proc_kb() {
    awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"
}

mib() {
    awk -v kb="$1" 'BEGIN { printf "%.1f MiB", kb / 1024 }'
}

build_release --workspace
[[ -x $LOADGEN ]] || die "no load generator at $LOADGEN (build with: cargo build --release -p herald-loadgen)"

# (a) throughput and (b) latency, on one herald instance.
start_ingest_herald ingest
loadgen throughput throughput --url "$URL" --batch "$BATCH" --concurrency "$CONCURRENCY" \
    --distinct "$DISTINCT" --duration "${DURATION}s" --warmup "${WARMUP}s"
require_alive throughput
loadgen latency latency --url "$URL" --rate "$RATE" --distinct "$DISTINCT" \
    --duration "${DURATION}s" --warmup "${WARMUP}s"
require_alive latency
ingest_hwm_kb=$(proc_kb "$HERALD_PID" VmHWM)
stop_herald

# (c) memory with ALERTS active alerts, on a fresh store.
echo
start_ingest_herald memory
idle_rss_kb=$(proc_kb "$HERALD_PID" VmRSS)
loadgen load load --url "$URL" --alerts "$ALERTS" --batch "$LOAD_BATCH"
echo "waiting ${SETTLE}s before reading memory"
sleep "$SETTLE"
require_alive load
rss_kb=$(proc_kb "$HERALD_PID" VmRSS)
hwm_kb=$(proc_kb "$HERALD_PID" VmHWM)
store_kb=$(du -sk "$HERALD_DIR" --exclude=herald.log --exclude=herald.yaml | cut -f1)
stop_herald

summary_head ingest "SQLite store in /tmp, receiver without integrations, load generator on the same machine"
cat <<EOF
| benchmark | result |
|---|---|
| throughput: batch $BATCH, $CONCURRENCY workers, ${DURATION}s | $(result throughput alerts_per_s) alerts/s, $(result throughput requests_per_s) req/s; batch latency p50 $(result throughput p50_ms) ms, p99 $(result throughput p99_ms) ms; $(result throughput non_2xx) non-2xx, $(result throughput errors) errors |
| latency: 1 alert/request, $RATE req/s open loop, ${DURATION}s | p50 $(result latency p50_ms) ms, p90 $(result latency p90_ms) ms, p99 $(result latency p99_ms) ms, p99.9 $(result latency p999_ms) ms, max $(result latency max_ms) ms; achieved $(result latency achieved_rate) req/s; $(result latency non_2xx) non-2xx, $(result latency errors) errors |
| memory after the two runs above | VmHWM $(mib "$ingest_hwm_kb") |
| memory, idle on a fresh store | VmRSS $(mib "$idle_rss_kb") |
| memory, $ALERTS active alerts (${SETTLE}s after loading) | VmRSS $(mib "$rss_kb"), VmHWM $(mib "$hwm_kb"); store on disk $(mib "$store_kb"); loaded at $(result load alerts_per_s) alerts/s |

RESULT bench=ingest commit=$(short_commit) alerts_per_s=$(result throughput alerts_per_s) throughput_p99_ms=$(result throughput p99_ms) latency_p50_ms=$(result latency p50_ms) latency_p99_ms=$(result latency p99_ms) latency_p999_ms=$(result latency p999_ms) idle_rss_kb=$idle_rss_kb rss_kb=$rss_kb hwm_kb=$hwm_kb alerts=$ALERTS
EOF
