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

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

DURATION=${BENCH_SECONDS:-20}
WARMUP=${BENCH_WARMUP:-2}
BATCH=${BENCH_BATCH:-100}
CONCURRENCY=${BENCH_CONCURRENCY:-8}
DISTINCT=${BENCH_DISTINCT:-100000}
RATE=${BENCH_RATE:-1000}
ALERTS=${BENCH_ALERTS:-100000}
LOAD_BATCH=${BENCH_LOAD_BATCH:-500}
SETTLE=${BENCH_SETTLE:-5}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-30}
BUILD=${BENCH_BUILD:-1}
KEEP=${BENCH_KEEP:-0}
HERALD=${HERALD_BIN:-$ROOT/target/release/herald}
LOADGEN=$ROOT/target/release/herald-loadgen
export HERALD_LOG=${HERALD_LOG:-warn}

STOP_TIMEOUT=10 # seconds herald gets to exit after SIGTERM before SIGKILL

die() {
    echo "ingest.sh: $*" >&2
    exit 1
}

for var in BENCH_SECONDS BENCH_WARMUP BENCH_BATCH BENCH_CONCURRENCY BENCH_DISTINCT BENCH_RATE BENCH_ALERTS \
    BENCH_LOAD_BATCH BENCH_SETTLE BENCH_READY_TIMEOUT; do
    [[ ${!var:-0} =~ ^[0-9]+$ ]] || die "$var must be a whole number, got '${!var}'"
done
for tool in cargo curl python3 git; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

WORK=$(mktemp -d /tmp/herald-bench.XXXXXX)
HERALD_PID=
LOADGEN_PID=
HERALD_DIR=
URL=

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
            echo "ingest.sh: herald did not stop within ${STOP_TIMEOUT}s of SIGTERM; killing it" >&2
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
        echo "ingest.sh: interrupted" >&2
    fi
    if [[ -n $LOADGEN_PID ]]; then
        kill -TERM "$LOADGEN_PID" 2>/dev/null || true
        wait "$LOADGEN_PID" 2>/dev/null || true
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

# Starts herald with a fresh store in $WORK/NAME and waits until it is ready. Sets HERALD_PID, HERALD_DIR and URL.
start_herald() {
    local name=$1
    HERALD_DIR=$WORK/$name
    mkdir -p "$HERALD_DIR"
    local port
    port=$(free_port)
    cat >"$HERALD_DIR/herald.yaml" <<EOF
server:
  listen: "127.0.0.1:$port"
storage:
  url: "sqlite://$HERALD_DIR/herald.db"
route:
  receiver: blackhole
receivers:
  - name: blackhole
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
    echo "herald ready at $URL (pid $HERALD_PID, store $HERALD_DIR/herald.db)"
}

require_alive() {
    kill -0 "$HERALD_PID" 2>/dev/null || die "herald (pid $HERALD_PID) is no longer running after the $1 run"
}

# Runs the load generator, keeping its output in $WORK/NAME.out and showing it when it ends. It runs in the
# background so that an interrupt is handled at once rather than after the run.
loadgen() {
    local name=$1 status=0
    shift
    echo
    "$LOADGEN" "$@" >"$WORK/$name.out" 2>&1 &
    LOADGEN_PID=$!
    wait "$LOADGEN_PID" || status=$?
    LOADGEN_PID=
    cat "$WORK/$name.out"
    return "$status"
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

if [[ $BUILD == 1 ]]; then
    echo "building release binaries"
    cargo build --release --workspace
fi
[[ -x $HERALD ]] || die "no herald binary at $HERALD"
[[ -x $LOADGEN ]] || die "no load generator at $LOADGEN (build with: cargo build --release -p herald-loadgen)"

# (a) throughput and (b) latency, on one herald instance.
start_herald ingest
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
start_herald memory
idle_rss_kb=$(proc_kb "$HERALD_PID" VmRSS)
loadgen load load --url "$URL" --alerts "$ALERTS" --batch "$LOAD_BATCH"
echo "waiting ${SETTLE}s before reading memory"
sleep "$SETTLE"
require_alive load
rss_kb=$(proc_kb "$HERALD_PID" VmRSS)
hwm_kb=$(proc_kb "$HERALD_PID" VmHWM)
store_kb=$(du -sk "$HERALD_DIR" --exclude=herald.log --exclude=herald.yaml | cut -f1)
stop_herald

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
    commit="$commit (with uncommitted changes)"
fi
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem_total=$(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)

cat <<EOF

## herald ingest benchmark

| | |
|---|---|
| commit | $commit |
| date | $(date -u +%Y-%m-%dT%H:%M:%SZ) |
| machine | $(nproc) CPUs, ${cpu_model:-unknown CPU}, $mem_total RAM, Linux $(uname -r) |
| toolchain | $(rustc --version 2>/dev/null || echo unknown) |
| setup | SQLite store in /tmp, receiver without integrations, load generator on the same machine |

| benchmark | result |
|---|---|
| throughput: batch $BATCH, $CONCURRENCY workers, ${DURATION}s | $(result throughput alerts_per_s) alerts/s, $(result throughput requests_per_s) req/s; batch latency p50 $(result throughput p50_ms) ms, p99 $(result throughput p99_ms) ms; $(result throughput non_2xx) non-2xx, $(result throughput errors) errors |
| latency: 1 alert/request, $RATE req/s open loop, ${DURATION}s | p50 $(result latency p50_ms) ms, p90 $(result latency p90_ms) ms, p99 $(result latency p99_ms) ms, p99.9 $(result latency p999_ms) ms, max $(result latency max_ms) ms; achieved $(result latency achieved_rate) req/s; $(result latency non_2xx) non-2xx, $(result latency errors) errors |
| memory after the two runs above | VmHWM $(mib "$ingest_hwm_kb") |
| memory, idle on a fresh store | VmRSS $(mib "$idle_rss_kb") |
| memory, $ALERTS active alerts (${SETTLE}s after loading) | VmRSS $(mib "$rss_kb"), VmHWM $(mib "$hwm_kb"); store on disk $(mib "$store_kb"); loaded at $(result load alerts_per_s) alerts/s |

RESULT bench=ingest commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown) alerts_per_s=$(result throughput alerts_per_s) throughput_p99_ms=$(result throughput p99_ms) latency_p50_ms=$(result latency p50_ms) latency_p99_ms=$(result latency p99_ms) latency_p999_ms=$(result latency p999_ms) idle_rss_kb=$idle_rss_kb rss_kb=$rss_kb hwm_kb=$hwm_kb alerts=$ALERTS
EOF
