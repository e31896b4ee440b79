#!/usr/bin/env bash
# herald side by side with Alertmanager (Debian's prometheus-alertmanager): the same workloads against each, one
# system at a time, each started fresh (new store or data dir) for every workload and stopped before the other
# starts. Both get the same route (group_by [alertname, instance], every alert its own group, group_wait 0s,
# repeat_interval 24h, the workload's group_interval) and one webhook receiver: the benchmark's own loopback
# receiver, answering 200 at once. herald's delivery settings stay at its defaults. Driven by bench/delivery
# (herald-bench-delivery); ends with a Markdown table (each measure, both systems' runs, medians, herald ÷
# Alertmanager) and one RESULT line. See bench/README.md.
#
# Workloads (BENCH_WORKLOADS, in this order):
#   burst       BENCH_BURST_ALERTS distinct alerts posted in BENCH_BATCH-alert batches by BENCH_POSTERS posters,
#               group_interval 5m: time from the first post until every alert was delivered; peak RSS
#   burst-1s    the same with group_interval 1s
#   overload    BENCH_OVERLOAD_ALERTS alerts over BENCH_OVERLOAD_SECONDS (paced open loop, batches retried after
#               Retry-After when refused), group_interval 1s: deliveries at the end of the load and at
#               BENCH_OVERLOAD_MARKS seconds after it, RSS then, retries
#   resend      single-alert posts on BENCH_RESEND_CONNECTIONS connections (closed loop) drawn from
#               BENCH_RESEND_DISTINCT recurring alerts for BENCH_RESEND_SECONDS: accepted posts/s
#   idle        BENCH_IDLE_ALERTS groups with group_interval BENCH_IDLE_INTERVAL s: once all were notified and
#               BENCH_IDLE_SETTLE s passed, the CPU used over BENCH_IDLE_SECONDS s with nothing changing
#   sustained   traffic shaped like Prometheus's, group_interval BENCH_SUSTAINED_INTERVAL s (5m): a population of
#               BENCH_SUSTAINED_POPULATION distinct firing alerts is preloaded as in idle, and once every first
#               notification arrived (only the time that took is noted), for BENCH_SUSTAINED_SECONDS
#               BENCH_SUSTAINED_RATE alerts/s in BENCH_BATCH-alert batches (open loop, refused batches retried) that
#               re-send the population in turn (a fresh endsAt 10 minutes ahead, the same startsAt), while
#               BENCH_SUSTAINED_CHURN alerts/s join it (new label sets: new groups, each a first notification) and
#               as many leave it (sent once with endsAt now: each a resolved notification, at its group's next
#               tick); the rate counts all three. Then up to BENCH_SUSTAINED_WAIT s for the deliveries. Accepted
#               alerts/s, refusals and retries, ingest-to-delivery p50/p99/max of the new alerts' first
#               notifications and of the resolved ones, alerts not delivered, duplicates; for herald the max of
#               herald_delivery_oldest_open_seconds sampled every 500 ms during the load; RSS at the end of the
#               load and peak (VmHWM); server CPU during the load
#   flood       BENCH_FLOOD_RATE distinct alerts/s (every one a new group and a notification) in batches for
#               BENCH_FLOOD_SECONDS (paced open loop), group_interval 5m: more than either system keeps up with;
#               ingest-to-delivery latency, refusals and retries, peak RSS; for herald the max of
#               herald_delivery_oldest_open_seconds sampled every 500 ms
#   latency     single-alert posts at BENCH_LATENCY_RATE/s for BENCH_LATENCY_SECONDS (open loop): ingest-to-delivery
#               p50/p99/max
#
# Environment (defaults in brackets):
#   BENCH_SMOKE [0]                 1: a quick smoke run (1 run, small counts, short times: a minute or two);
#                                   any knob below still overrides it
#   BENCH_RUNS [3]                  runs of every workload on each system (the summary gives each and the median)
#   BENCH_WORKLOADS [all]           which workloads, e.g. "burst overload"
#   BENCH_SYSTEMS ["alertmanager herald"]   which systems, in this order within each workload
#   BENCH_BATCH [100]               alerts per request (burst, overload, idle, sustained, flood)
#   BENCH_POSTERS [4]               concurrent posters (burst, idle, sustained's preload)
#   BENCH_BURST_ALERTS [30000]
#   BENCH_DEADLINE [600]            seconds a burst or idle run, or sustained's preload, may take until everything
#                                   was delivered
#   BENCH_STALL [60]                seconds without an arrival after which a run stops waiting
#   BENCH_OVERLOAD_ALERTS [100000]  BENCH_OVERLOAD_SECONDS [15]
#   BENCH_OVERLOAD_MARKS ["20 60"]  seconds after the load at which deliveries are noted (it watches at least
#                                   until the first)
#   BENCH_OVERLOAD_WAIT [180]       seconds after the load it waits for deliveries at most
#   BENCH_MAX_IN_FLIGHT [1000]      batches outstanding at most in the open-loop workloads (overload, sustained,
#                                   flood); one due beyond that is not sent, and counted
#   BENCH_RESEND_CONNECTIONS [16]   BENCH_RESEND_DISTINCT [5000]   BENCH_RESEND_SECONDS [20]
#   BENCH_IDLE_ALERTS [100000]      BENCH_IDLE_INTERVAL [10]   BENCH_IDLE_SETTLE [15]   BENCH_IDLE_SECONDS [60]
#   BENCH_SUSTAINED_POPULATION [100000]   alerts preloaded and re-sent
#   BENCH_SUSTAINED_RATE [30000]    alerts/s (half of herald's maximum ingest rate of re-sends, which bench/ingest.sh
#                                   measured at about 60,000 alerts/s)
#   BENCH_SUSTAINED_CHURN [500]     alerts/s joining the population, and as many leaving it
#   BENCH_SUSTAINED_SECONDS [30]    BENCH_SUSTAINED_INTERVAL [300] (group_interval, seconds)
#   BENCH_SUSTAINED_WAIT [360]      seconds after the load it waits at most (the resolved notifications come at
#                                   their groups' next tick, up to a group_interval after the preload)
#   BENCH_FLOOD_RATE [25000]        BENCH_FLOOD_SECONDS [30]   BENCH_FLOOD_WAIT [120] (seconds after the load)
#   BENCH_LATENCY_RATE [500]        BENCH_LATENCY_SECONDS [20]   BENCH_LATENCY_SETTLE [30]
#   BENCH_RETRY_ATTEMPTS [10]       posts of a refused batch at most (429, 5xx, no answer), the first included
#   BENCH_RETRY_MAX_WAIT [30]       longest wait in seconds before such a retry, whatever Retry-After says
#   BENCH_THREADS [1]               runtime threads of the benchmark (generator and receiver)
#   BENCH_QUIET [30]                before each workload, wait until other processes use at most this % of one
#   BENCH_QUIET_WAIT [120]          core (over 2 s), at most this many seconds (0: don't wait); each run's table
#                                   row "CPU of other processes" shows what they took anyway
#   BENCH_DIR [/tmp]                where the temp dir (stores, data dirs, configs, logs) goes
#   BENCH_READY_TIMEOUT [30]        seconds a system may take to answer /-/ready
#   BENCH_BUILD [1]                 0 skips the build
#   BENCH_KEEP [0]                  1 keeps the temp dir (configs, stores, logs, raw outputs); otherwise each
#                                   run's store or data dir is removed when its system stops
#   HERALD_BIN [target/release/herald]   HERALD_LOG [warn]
#   ALERTMANAGER_BIN [/usr/bin/prometheus-alertmanager]   ALERTMANAGER_LOG [warn]
#
# Quick smoke run:    BENCH_SMOKE=1 bench/vs-alertmanager.sh
# One workload:       BENCH_RUNS=1 BENCH_WORKLOADS=overload bench/vs-alertmanager.sh
# Full run (3 runs of everything; about 50 minutes with today's herald, sustained alone about 4 minutes a run on
# each system; more while the machine is busy):
#                     bench/vs-alertmanager.sh | tee out.txt
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # moves to the repository root, sets ROOT

ALL_WORKLOADS="burst burst-1s overload resend idle sustained flood latency"
if [[ ${BENCH_SMOKE:-0} == 1 ]]; then
    : "${BENCH_RUNS:=1}" "${BENCH_BURST_ALERTS:=2000}" "${BENCH_DEADLINE:=120}" "${BENCH_STALL:=20}"
    : "${BENCH_OVERLOAD_ALERTS:=5000}" "${BENCH_OVERLOAD_SECONDS:=3}" "${BENCH_OVERLOAD_MARKS:=2 5}"
    : "${BENCH_OVERLOAD_WAIT:=30}" "${BENCH_RESEND_DISTINCT:=500}" "${BENCH_RESEND_SECONDS:=3}"
    : "${BENCH_IDLE_ALERTS:=3000}" "${BENCH_IDLE_INTERVAL:=2}" "${BENCH_IDLE_SETTLE:=3}" "${BENCH_IDLE_SECONDS:=5}"
    : "${BENCH_SUSTAINED_POPULATION:=3000}" "${BENCH_SUSTAINED_RATE:=3000}" "${BENCH_SUSTAINED_CHURN:=100}"
    : "${BENCH_SUSTAINED_SECONDS:=5}" "${BENCH_SUSTAINED_INTERVAL:=10}" "${BENCH_SUSTAINED_WAIT:=40}"
    : "${BENCH_FLOOD_RATE:=2000}" "${BENCH_FLOOD_SECONDS:=3}" "${BENCH_FLOOD_WAIT:=30}"
    : "${BENCH_LATENCY_RATE:=200}" "${BENCH_LATENCY_SECONDS:=3}" "${BENCH_LATENCY_SETTLE:=10}"
fi
RUNS=${BENCH_RUNS:-3}
WORKLOADS=${BENCH_WORKLOADS:-$ALL_WORKLOADS}
SYSTEMS=${BENCH_SYSTEMS:-alertmanager herald}
BATCH=${BENCH_BATCH:-100}
POSTERS=${BENCH_POSTERS:-4}
BURST_ALERTS=${BENCH_BURST_ALERTS:-30000}
DEADLINE=${BENCH_DEADLINE:-600}
STALL=${BENCH_STALL:-60}
OVERLOAD_ALERTS=${BENCH_OVERLOAD_ALERTS:-100000}
OVERLOAD_SECONDS=${BENCH_OVERLOAD_SECONDS:-15}
OVERLOAD_MARKS=${BENCH_OVERLOAD_MARKS:-20 60}
OVERLOAD_WAIT=${BENCH_OVERLOAD_WAIT:-180}
RESEND_CONNECTIONS=${BENCH_RESEND_CONNECTIONS:-16}
RESEND_DISTINCT=${BENCH_RESEND_DISTINCT:-5000}
RESEND_SECONDS=${BENCH_RESEND_SECONDS:-20}
IDLE_ALERTS=${BENCH_IDLE_ALERTS:-100000}
IDLE_INTERVAL=${BENCH_IDLE_INTERVAL:-10}
IDLE_SETTLE=${BENCH_IDLE_SETTLE:-15}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-60}
SUSTAINED_POPULATION=${BENCH_SUSTAINED_POPULATION:-100000}
SUSTAINED_RATE=${BENCH_SUSTAINED_RATE:-30000}
SUSTAINED_CHURN=${BENCH_SUSTAINED_CHURN:-500}
SUSTAINED_SECONDS=${BENCH_SUSTAINED_SECONDS:-30}
SUSTAINED_INTERVAL=${BENCH_SUSTAINED_INTERVAL:-300}
SUSTAINED_WAIT=${BENCH_SUSTAINED_WAIT:-360}
FLOOD_RATE=${BENCH_FLOOD_RATE:-25000}
FLOOD_SECONDS=${BENCH_FLOOD_SECONDS:-30}
FLOOD_WAIT=${BENCH_FLOOD_WAIT:-120}
LATENCY_RATE=${BENCH_LATENCY_RATE:-500}
LATENCY_SECONDS=${BENCH_LATENCY_SECONDS:-20}
LATENCY_SETTLE=${BENCH_LATENCY_SETTLE:-30}
MAX_IN_FLIGHT=${BENCH_MAX_IN_FLIGHT:-1000}
RETRY_ATTEMPTS=${BENCH_RETRY_ATTEMPTS:-10}
RETRY_MAX_WAIT=${BENCH_RETRY_MAX_WAIT:-30}
THREADS=${BENCH_THREADS:-1}
QUIET=${BENCH_QUIET:-30}
QUIET_WAIT=${BENCH_QUIET_WAIT:-120}
BENCH_DIR=${BENCH_DIR:-/tmp}
BENCH=$ROOT/target/release/herald-bench-delivery

require_whole_numbers BENCH_RUNS BENCH_BATCH BENCH_POSTERS BENCH_BURST_ALERTS BENCH_DEADLINE BENCH_STALL \
    BENCH_OVERLOAD_ALERTS BENCH_OVERLOAD_SECONDS BENCH_OVERLOAD_WAIT BENCH_RESEND_CONNECTIONS \
    BENCH_RESEND_DISTINCT BENCH_RESEND_SECONDS BENCH_IDLE_ALERTS BENCH_IDLE_INTERVAL BENCH_IDLE_SETTLE \
    BENCH_IDLE_SECONDS BENCH_SUSTAINED_POPULATION BENCH_SUSTAINED_RATE BENCH_SUSTAINED_CHURN \
    BENCH_SUSTAINED_SECONDS BENCH_SUSTAINED_INTERVAL BENCH_SUSTAINED_WAIT BENCH_FLOOD_RATE BENCH_FLOOD_SECONDS \
    BENCH_FLOOD_WAIT BENCH_LATENCY_RATE BENCH_LATENCY_SECONDS BENCH_LATENCY_SETTLE BENCH_MAX_IN_FLIGHT \
    BENCH_RETRY_ATTEMPTS BENCH_RETRY_MAX_WAIT BENCH_THREADS BENCH_QUIET BENCH_QUIET_WAIT BENCH_READY_TIMEOUT
((RUNS >= 1 && RUNS <= 20)) || die "BENCH_RUNS must be between 1 and 20"
for n in BATCH POSTERS BURST_ALERTS OVERLOAD_ALERTS OVERLOAD_SECONDS RESEND_CONNECTIONS RESEND_DISTINCT \
    RESEND_SECONDS IDLE_ALERTS IDLE_INTERVAL IDLE_SECONDS SUSTAINED_POPULATION SUSTAINED_RATE SUSTAINED_CHURN \
    SUSTAINED_SECONDS SUSTAINED_INTERVAL FLOOD_RATE FLOOD_SECONDS LATENCY_RATE LATENCY_SECONDS MAX_IN_FLIGHT \
    THREADS; do
    ((${!n} > 0)) || die "BENCH_$n must be positive"
done
((2 * SUSTAINED_CHURN <= SUSTAINED_RATE)) ||
    die "BENCH_SUSTAINED_CHURN must be at most half of BENCH_SUSTAINED_RATE (the rate carries the joins and leaves)"
[[ $OVERLOAD_MARKS =~ ^[0-9]+( [0-9]+)*$ ]] || die "BENCH_OVERLOAD_MARKS must be whole seconds separated by spaces"
for workload in $WORKLOADS; do
    [[ " $ALL_WORKLOADS " == *" $workload "* ]] || die "unknown workload '$workload' (known: $ALL_WORKLOADS)"
done
for system in $SYSTEMS; do
    [[ $system == alertmanager || $system == herald ]] || die "unknown system '$system' (alertmanager or herald)"
done
require_tools cargo curl python3 git
[[ " $SYSTEMS " == *" alertmanager "* ]] && require_alertmanager

[[ -d $BENCH_DIR ]] || die "BENCH_DIR $BENCH_DIR is not a directory"
start_work "$BENCH_DIR/herald-vs-alertmanager.XXXXXX"
RECEIVER=  # the address the benchmark's receiver listens on (start_system)
SUT_PID=   # the system under test (start_system)
FAILED=0   # benchmark runs that failed

# The group_interval of each workload.
group_interval() {
    case $1 in
    burst-1s | overload) echo 1s ;;
    idle) echo "${IDLE_INTERVAL}s" ;;
    sustained) echo "${SUSTAINED_INTERVAL}s" ;;
    *) echo 5m ;;
    esac
}

# Starts SYSTEM (alertmanager or herald) fresh for run NAME with the shared route and one webhook to the
# benchmark's receiver on another free loopback port, group_interval GROUP_INTERVAL. Sets SUT_PID, URL, RECEIVER.
start_system() {
    local system=$1 name=$2 group_interval=$3
    local port receiver_port
    port=$(free_port)
    receiver_port=$(free_port)
    while [[ $receiver_port == "$port" ]]; do
        receiver_port=$(free_port)
    done
    RECEIVER=127.0.0.1:$receiver_port
    local config
    config=$(
        cat <<EOF
route:
  receiver: bench
  group_by: [alertname, instance]
  group_wait: 0s
  group_interval: $group_interval
  repeat_interval: 24h
receivers:
  - name: bench
    webhook_configs:
      - url: "http://$RECEIVER/hook"
EOF
    )
    if [[ $system == herald ]]; then
        AM_DIR=
        start_herald "$name" "$port" <<<"$config"
        SUT_PID=$HERALD_PID
    else
        HERALD_DIR=
        start_alertmanager "$name" "$port" <<<"$config"
        SUT_PID=$AM_PID
    fi
    echo "$system ready at $URL (pid $SUT_PID, group_interval $group_interval, receiver $RECEIVER)"
}

# Busy ticks of all CPUs (user, nice, system, irq, softirq, steal; 100 a second per busy core).
machine_busy() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat
}

# Waits until the machine is quiet (nothing of ours runs now): at most QUIET % of one core busy over 2 s, for at most
# QUIET_WAIT seconds; then goes ahead anyway.
wait_quiet() {
    ((QUIET_WAIT > 0)) || return 0
    local deadline=$((SECONDS + QUIET_WAIT)) before after percent
    while true; do
        before=$(machine_busy)
        sleep 2
        after=$(machine_busy)
        percent=$(((after - before) / 2))
        ((percent <= QUIET)) && return 0
        if ((SECONDS >= deadline)); then
            echo "the machine is still busy (other processes use ${percent}% of one core); going ahead"
            return 0
        fi
        echo "waiting for the machine to be quiet (other processes use ${percent}% of one core)"
    done
}

# Stops SYSTEM; unless BENCH_KEEP=1 removes its store or data dir, then flushes the page cache to disk, so the
# next workload does not share the disk with the writeback of the earlier ones' files.
stop_system() {
    if [[ $1 == herald ]]; then
        stop_herald
        [[ $KEEP == 1 || -z $HERALD_DIR ]] || rm -f "$HERALD_DIR"/herald.db*
    else
        stop_alertmanager
        [[ $KEEP == 1 || -z $AM_DIR ]] || rm -rf "$AM_DIR/data"
    fi
    sync
    SUT_PID=
}

# Runs the benchmark binary's MODE with ARGS against the running system, output kept in $WORK/NAME.out (see
# run_logged). A failed run is counted and reported, not fatal: the other runs go on.
bench() {
    local name=$1 mode=$2 system=$3
    shift 3
    local status=0
    run_logged "$name" "$BENCH" "$mode" --url "$URL" --listen "$RECEIVER" --pid "$SUT_PID" --threads "$THREADS" \
        --retry-attempts "$RETRY_ATTEMPTS" --retry-max-wait "${RETRY_MAX_WAIT}s" --tag "system=$system" "$@" ||
        status=$?
    if ! kill -0 "$SUT_PID" 2>/dev/null; then
        echo "$SCRIPT: $system (pid $SUT_PID) is no longer running after the $name run" >&2
        status=1
    fi
    if ((status != 0)); then
        echo "$SCRIPT: the $name run failed (status $status); going on" >&2
        FAILED=$((FAILED + 1))
    fi
}

# Runs WORKLOAD against SYSTEM for run RUN.
run_workload() {
    local workload=$1 system=$2 run=$3
    local name=$workload-$system-$run gi
    gi=$(group_interval "$workload")
    echo
    echo "=== run $run: $workload on $system (group_interval $gi) ==="
    wait_quiet
    start_system "$system" "$name" "$gi"
    case $workload in
    burst | burst-1s)
        bench "$name" throughput "$system" --alerts "$BURST_ALERTS" --batch "$BATCH" --concurrency "$POSTERS" \
            --deadline "${DEADLINE}s" --idle "${STALL}s" --outbox-every 0s
        ;;
    overload)
        local marks first
        marks=$(sed 's/\([0-9]\+\)/\1s/g; s/ /,/g' <<<"$OVERLOAD_MARKS")
        first=${OVERLOAD_MARKS%% *}
        bench "$name" paced "$system" --rate "$(python3 -c "print($OVERLOAD_ALERTS / $OVERLOAD_SECONDS)")" \
            --batch "$BATCH" --duration "${OVERLOAD_SECONDS}s" --checkpoints "$marks" --hold "${first}s" \
            --wait "${OVERLOAD_WAIT}s" --idle "${STALL}s" --max-in-flight "$MAX_IN_FLIGHT"
        ;;
    resend)
        bench "$name" resend "$system" --connections "$RESEND_CONNECTIONS" --distinct "$RESEND_DISTINCT" \
            --duration "${RESEND_SECONDS}s"
        ;;
    idle)
        bench "$name" throughput "$system" --alerts "$IDLE_ALERTS" --batch "$BATCH" --concurrency "$POSTERS" \
            --deadline "${DEADLINE}s" --idle "${STALL}s" --outbox-every 0s --cpu-settle "${IDLE_SETTLE}s" \
            --cpu-window "${IDLE_SECONDS}s"
        ;;
    sustained)
        local gauge=()
        [[ $system == herald ]] && gauge=(--gauge herald_delivery_oldest_open_seconds --gauge-every 500ms)
        bench "$name" sustained "$system" --population "$SUSTAINED_POPULATION" --batch "$BATCH" \
            --posters "$POSTERS" --preload-deadline "${DEADLINE}s" --rate "$SUSTAINED_RATE" \
            --churn "$SUSTAINED_CHURN" --duration "${SUSTAINED_SECONDS}s" --group-interval "${SUSTAINED_INTERVAL}s" \
            --wait "${SUSTAINED_WAIT}s" --idle "${STALL}s" --max-in-flight "$MAX_IN_FLIGHT" "${gauge[@]}"
        ;;
    flood)
        local gauge=()
        [[ $system == herald ]] && gauge=(--gauge herald_delivery_oldest_open_seconds --gauge-every 500ms)
        bench "$name" paced "$system" --rate "$FLOOD_RATE" --batch "$BATCH" --duration "${FLOOD_SECONDS}s" \
            --wait "${FLOOD_WAIT}s" --idle "${STALL}s" --max-in-flight "$MAX_IN_FLIGHT" "${gauge[@]}"
        ;;
    latency)
        bench "$name" latency "$system" --rate "$LATENCY_RATE" --duration "${LATENCY_SECONDS}s" --warmup 2s \
            --settle "${LATENCY_SETTLE}s"
        ;;
    esac
    stop_system "$system"
}

build_release -p herald -p herald-bench-delivery
[[ -x $BENCH ]] || die "no benchmark binary at $BENCH (build with: cargo build --release -p herald-bench-delivery)"
AM_VERSION=n/a
[[ " $SYSTEMS " == *" alertmanager "* ]] &&
    AM_VERSION=$("$ALERTMANAGER" --version 2>&1 | head -n 1 | sed 's/^alertmanager, //')

for ((run = 1; run <= RUNS; run++)); do
    for workload in $WORKLOADS; do
        for system in $SYSTEMS; do
            run_workload "$workload" "$system" "$run"
        done
    done
done

summary_head "vs Alertmanager" "Alertmanager $AM_VERSION ($ALERTMANAGER, gossip off) against herald ($HERALD, \
default delivery settings, SQLite store in $BENCH_DIR), one at a time, each fresh per workload; route group_by \
[alertname, instance] (every alert its own group), group_wait 0s, repeat_interval 24h; one webhook to a loopback \
receiver answering 200 at once; benchmark on the same machine ($THREADS runtime thread)"

WORK=$WORK RUNS=$RUNS WORKLOADS=$WORKLOADS SYSTEMS=$SYSTEMS COMMIT=$(short_commit) BATCH=$BATCH POSTERS=$POSTERS \
    BURST_ALERTS=$BURST_ALERTS OVERLOAD_ALERTS=$OVERLOAD_ALERTS OVERLOAD_SECONDS=$OVERLOAD_SECONDS \
    OVERLOAD_MARKS=$OVERLOAD_MARKS RESEND_CONNECTIONS=$RESEND_CONNECTIONS RESEND_DISTINCT=$RESEND_DISTINCT \
    IDLE_ALERTS=$IDLE_ALERTS IDLE_INTERVAL=$IDLE_INTERVAL IDLE_SECONDS=$IDLE_SECONDS \
    SUSTAINED_POPULATION=$SUSTAINED_POPULATION SUSTAINED_RATE=$SUSTAINED_RATE SUSTAINED_CHURN=$SUSTAINED_CHURN \
    SUSTAINED_SECONDS=$SUSTAINED_SECONDS SUSTAINED_INTERVAL=$SUSTAINED_INTERVAL FLOOD_RATE=$FLOOD_RATE \
    FLOOD_SECONDS=$FLOOD_SECONDS LATENCY_RATE=$LATENCY_RATE python3 "$ROOT/bench/vs-alertmanager-summary.py"

if ((FAILED > 0)); then
    die "$FAILED benchmark run(s) failed (see above); their cells are n/a"
fi
