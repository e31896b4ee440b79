# Shared by the benchmark scripts (bench/ingest.sh, bench/delivery.sh, bench/vs-alertmanager.sh), which source it
# with `set -euo pipefail` on: it moves to the repository root (ROOT) and holds the settings they all take, the temp
# dir and the cleanup on every exit (Ctrl-C included), starting herald (or Alertmanager) on a free loopback port and
# stopping it, running a benchmark binary with its output kept, and the head of the summary (the machine and commit
# the numbers come from).
#
# Environment (defaults in brackets):
#   BENCH_READY_TIMEOUT [30]    seconds herald (or Alertmanager) may take to answer /-/ready
#   BENCH_BUILD [1]             0 skips the build
#   BENCH_KEEP [0]              1 keeps the temp dir (configs, stores, logs, raw outputs)
#   HERALD_BIN [target/release/herald]   the daemon to benchmark
#   HERALD_LOG [warn]           herald's log filter
#   ALERTMANAGER_BIN [/usr/bin/prometheus-alertmanager]   Alertmanager, for the side-by-side runs
#   ALERTMANAGER_LOG [warn]     Alertmanager's --log.level

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

SCRIPT=${0##*/}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-30}
BUILD=${BENCH_BUILD:-1}
KEEP=${BENCH_KEEP:-0}
HERALD=${HERALD_BIN:-$ROOT/target/release/herald}
export HERALD_LOG=${HERALD_LOG:-warn}
ALERTMANAGER=${ALERTMANAGER_BIN:-/usr/bin/prometheus-alertmanager}
ALERTMANAGER_LOG=${ALERTMANAGER_LOG:-warn}

STOP_TIMEOUT=10 # seconds herald (or Alertmanager) gets to exit after SIGTERM before SIGKILL

WORK=       # the temp dir (start_work)
HERALD_PID= # the running herald, its dir in WORK and its base URL (start_herald)
HERALD_DIR=
URL=
AM_PID= # the running Alertmanager and its dir in WORK (start_alertmanager; URL as for herald)
AM_DIR=
RUN_PID= # the running benchmark binary (run_logged)

die() {
    echo "$SCRIPT: $*" >&2
    exit 1
}

# Fails unless every variable named is unset or a whole number.
require_whole_numbers() {
    local var
    for var in "$@"; do
        [[ ${!var:-0} =~ ^[0-9]+$ ]] || die "$var must be a whole number, got '${!var}'"
    done
}

require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done
}

# Makes the temp dir WORK from the mktemp TEMPLATE and arranges for cleanup on every exit.
start_work() {
    WORK=$(mktemp -d "$1")
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Stops our child process PID (called NAME in messages): SIGTERM, then SIGKILL if it has not exited within
# STOP_TIMEOUT.
stop_process() {
    local pid=$1 name=$2
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local tries=$((STOP_TIMEOUT * 10))
        while kill -0 "$pid" 2>/dev/null && ((tries-- > 0)); do
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$SCRIPT: $name did not stop within ${STOP_TIMEOUT}s of SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

stop_herald() {
    [[ -n $HERALD_PID ]] || return 0
    stop_process "$HERALD_PID" herald
    HERALD_PID=
}

stop_alertmanager() {
    [[ -n $AM_PID ]] || return 0
    stop_process "$AM_PID" Alertmanager
    AM_PID=
}

# On exit: stops the benchmark binary and herald, shows the end of herald's log after a failure, removes WORK
# unless BENCH_KEEP=1.
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if ((status == 130 || status == 143)); then
        echo "$SCRIPT: interrupted" >&2
    fi
    if [[ -n $RUN_PID ]]; then
        kill -TERM "$RUN_PID" 2>/dev/null || true
        wait "$RUN_PID" 2>/dev/null || true
    fi
    stop_herald
    stop_alertmanager
    if ((status != 0)) && [[ -n $HERALD_DIR && -s $HERALD_DIR/herald.log ]]; then
        echo "--- last lines of herald's log ($HERALD_DIR/herald.log) ---" >&2
        tail -n 20 "$HERALD_DIR/herald.log" >&2
    fi
    if ((status != 0)) && [[ -n $AM_DIR && -s $AM_DIR/alertmanager.log ]]; then
        echo "--- last lines of Alertmanager's log ($AM_DIR/alertmanager.log) ---" >&2
        tail -n 20 "$AM_DIR/alertmanager.log" >&2
    fi
    if [[ $KEEP == 1 ]]; then
        echo "kept $WORK" >&2
    elif [[ -n $WORK ]]; then
        rm -rf "$WORK"
    fi
    exit "$status"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Builds the release binaries (`cargo build --release ARGS`) unless BENCH_BUILD=0, and checks herald's is there.
build_release() {
    if [[ $BUILD == 1 ]]; then
        echo "building release binaries"
        cargo build --release "$@"
    fi
    [[ -x $HERALD ]] || die "no herald binary at $HERALD"
}

# Starts herald with a fresh store in $WORK/NAME, listening on 127.0.0.1:PORT, the rest of its config (route,
# receivers, ...) read from stdin, and waits until it is ready. Sets HERALD_PID, HERALD_DIR and URL.
start_herald() {
    local name=$1 port=$2
    HERALD_DIR=$WORK/$name
    mkdir -p "$HERALD_DIR"
    {
        printf 'server:\n  listen: "127.0.0.1:%s"\nstorage:\n  url: "sqlite://%s/herald.db"\n' "$port" "$HERALD_DIR"
        cat
    } >"$HERALD_DIR/herald.yaml"
    URL=http://127.0.0.1:$port
    "$HERALD" serve -c "$HERALD_DIR/herald.yaml" >>"$HERALD_DIR/herald.log" 2>&1 &
    HERALD_PID=$!
    wait_ready herald "$HERALD_PID"
}

# Waits until the server NAME (process PID) answers $URL/-/ready, at most READY_TIMEOUT seconds.
wait_ready() {
    local name=$1 pid=$2
    local deadline=$((SECONDS + READY_TIMEOUT))
    until curl -fsS -o /dev/null --max-time 1 "$URL/-/ready" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || die "$name exited before it became ready (see its log below)"
        ((SECONDS < deadline)) || die "$name was not ready at $URL/-/ready within ${READY_TIMEOUT}s"
        sleep 0.1
    done
}

# Fails with the package to install unless ALERTMANAGER is an Alertmanager that runs.
require_alertmanager() {
    if [[ ! -x $ALERTMANAGER ]] && ! command -v "$ALERTMANAGER" >/dev/null; then
        die "no Alertmanager at $ALERTMANAGER: install the Debian package prometheus-alertmanager \
(apt-get install prometheus-alertmanager), or point ALERTMANAGER_BIN at an alertmanager binary"
    fi
    "$ALERTMANAGER" --version >/dev/null 2>&1 || die "$ALERTMANAGER --version failed: is it Alertmanager?"
}

# Starts Alertmanager with a fresh data dir in $WORK/NAME, listening on 127.0.0.1:PORT with gossip clustering off,
# its whole config (route, receivers) read from stdin, and waits until it is ready. Sets AM_PID, AM_DIR and URL.
start_alertmanager() {
    local name=$1 port=$2
    AM_DIR=$WORK/$name
    mkdir -p "$AM_DIR/data"
    cat >"$AM_DIR/alertmanager.yml"
    URL=http://127.0.0.1:$port
    "$ALERTMANAGER" --config.file="$AM_DIR/alertmanager.yml" --storage.path="$AM_DIR/data" \
        --web.listen-address="127.0.0.1:$port" --cluster.listen-address= --log.level="$ALERTMANAGER_LOG" \
        >>"$AM_DIR/alertmanager.log" 2>&1 &
    AM_PID=$!
    wait_ready Alertmanager "$AM_PID"
}

require_alive() {
    kill -0 "$HERALD_PID" 2>/dev/null || die "herald (pid $HERALD_PID) is no longer running after the $1 run"
}

# Runs COMMAND..., keeping its output in $WORK/NAME.out and showing it when it ends; returns its status. It runs in
# the background so that an interrupt is handled at once rather than after the run.
run_logged() {
    local name=$1 status=0
    shift
    "$@" >"$WORK/$name.out" 2>&1 &
    RUN_PID=$!
    wait "$RUN_PID" || status=$?
    RUN_PID=
    cat "$WORK/$name.out"
    return "$status"
}

short_commit() {
    git rev-parse --short HEAD 2>/dev/null || echo unknown
}

# The head of the summary: a `## herald NAME benchmark` heading and the Markdown table of where the numbers come
# from: commit (noting uncommitted changes), date, machine, toolchain, and SETUP; then a blank line.
summary_head() {
    local commit cpu_model mem_total
    commit=$(short_commit)
    if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
        commit="$commit (with uncommitted changes)"
    fi
    cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    mem_total=$(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    cat <<EOF

## herald $1 benchmark

| | |
|---|---|
| commit | $commit |
| date | $(date -u +%Y-%m-%dT%H:%M:%SZ) |
| machine | $(nproc) CPUs, ${cpu_model:-unknown CPU}, $mem_total RAM, Linux $(uname -r) |
| toolchain | $(rustc --version 2>/dev/null || echo unknown) |
| setup | $2 |

EOF
}
