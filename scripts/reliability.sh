#!/usr/bin/env bash
# herald's reliability suite (RELIABILITY.md): each script starts herald on loopback with a temporary store, makes
# something fail, checks what must hold, and stops everything it started by itself.
#
#   scripts/reliability.sh            the full form, whose figures RELIABILITY.md records (about 12 minutes)
#   scripts/reliability.sh --short    the short form CI runs (scripts/test.sh): the same checks, smaller counts
#
#   catchup        a webhook destination answering 500, then refusing connections (60 s; short: 10 s): every
#                  notification delivered once after it is back (bench/catchup.py)
#   retry-after    429 with Retry-After in seconds and as an HTTP date: no retry early, none late (bench/retry-after.py)
#   kill9          SIGKILL under load, 3 runs per ingest endpoint (short: 1): 0 acknowledged alerts lost, duplicates
#                  only for sends in flight at the kill (bench/kill9.py)
#   mutate         20,000 mutated requests to the three ingest endpoints (short: 2,000): no 5xx but 503, herald
#                  healthy, RSS bounded (bench/mutate.py); the property-based fuzzing of the parsers is in
#                  `cargo test` (src/ingest/fuzz_tests.rs)
#   disk-full      the store's tmpfs filled three ways, then freed: 503 while full, writes again after
#                  (bench/disk-full.py; needs root to mount, skipped with a message otherwise)
#   connections    idle connections: health answered, closed after idle_timeout (bench/connections.py)
#   memory         waves of alerts fire, resolve and pass retention (bench/memory.py); both run when present;
#                  memory's full form, 2 waves of 1,000,000 alerts, takes 10 minutes on a quiet 2-core machine and
#                  took over 40 on a busy one
#
# Options: --short; --herald PATH (use this binary, build nothing; else `cargo build --release --locked -p herald`
# and target/release/herald). Exits 1 when any step failed, naming them.
set -uo pipefail
cd "$(dirname "$0")/.."

short=0
herald=""
while [ $# -gt 0 ]; do
    case "$1" in
    --short) short=1 ;;
    --herald)
        herald=${2:?--herald needs a path}
        shift
        ;;
    *)
        echo "usage: $0 [--short] [--herald PATH]" >&2
        exit 2
        ;;
    esac
    shift
done

started=$SECONDS
failed=()
say() { printf 'reliability: %s\n' "$*" >&2; }

# Runs one step under a time limit (each script bounds itself; the limit only guards against a hang).
step() {
    local name=$1 limit=$2
    shift 2
    local begun=$SECONDS
    say "$name: $*"
    if timeout --kill-after=30 "$limit" "$@"; then
        say "$name: ok ($((SECONDS - begun)) s)"
    else
        say "$name: FAILED (exit $?, $((SECONDS - begun)) s)"
        failed+=("$name")
    fi
}

skip() { say "$1: skipped: $2"; }

if [ -z "$herald" ]; then
    begun=$SECONDS
    say "release build"
    cargo build --release --locked -p herald || {
        say "release build FAILED"
        exit 1
    }
    say "release build: $((SECONDS - begun)) s"
    herald=target/release/herald
fi
[ -x "$herald" ] || {
    say "$herald is missing"
    exit 1
}

if [ $short = 1 ]; then
    step catchup 300 bench/catchup.py --herald "$herald" --alerts 50 --outage 10 --deadline 60
    step retry-after 120 bench/retry-after.py --herald "$herald" --count 3
    step kill9 300 bench/kill9.py --herald "$herald" --runs 1 --rate 2000 --kill-after 1 2
    step mutate 300 bench/mutate.py --herald "$herald" --requests 2000
else
    step catchup 900 bench/catchup.py --herald "$herald" --alerts 200 --outage 60
    step retry-after 120 bench/retry-after.py --herald "$herald" --count 5
    step kill9 900 bench/kill9.py --herald "$herald" --runs 3
    step mutate 900 bench/mutate.py --herald "$herald" --requests 20000
fi

if [ "$(id -u)" -eq 0 ]; then
    step disk-full 300 bench/disk-full.py --herald "$herald" --size 16m
else
    skip disk-full "needs root to mount a tmpfs"
fi

# Scripts that may not exist on every branch: run when present, in their short form when they have one.
for extra in connections memory; do
    script=bench/$extra.py
    if [ ! -x "$script" ]; then
        skip "$extra" "$script is not there"
    elif [ $short = 1 ]; then
        if "$script" --help 2>/dev/null | grep -q -- '--short'; then
            step "$extra" 600 "$script" --herald "$herald" --short
        else
            skip "$extra" "$script has no --short form"
        fi
    else
        # memory.py bounds its full form by itself (at most about 2 hours); 1800 s is too short for it.
        limit=1800
        [ "$extra" = memory ] && limit=9000
        step "$extra" $limit "$script" --herald "$herald"
    fi
done

say "done in $((SECONDS - started)) s"
if [ ${#failed[@]} -gt 0 ]; then
    say "FAILED: ${failed[*]}"
    exit 1
fi
say "every check held"
