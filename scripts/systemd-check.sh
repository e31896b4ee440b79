#!/usr/bin/env bash
# Checks deploy/herald.service with systemd's own tools: `systemd-analyze verify` finds nothing to say, and
# `systemd-analyze security --offline=yes` rates its exposure 2.0 or lower. Installs systemd (systemd-analyze) and
# procps (/bin/kill, the unit's ExecReload) when missing; fails loudly when something is missing.
#
# verify checks that ExecStart's binary exists: it runs on a copy of the unit whose ExecStart points at the herald
# this tree builds (target/debug/herald, or under $CARGO_TARGET_DIR; built when missing), not /usr/local/bin/herald.
set -euo pipefail
cd "$(dirname "$0")/.."

unit=deploy/herald.service
max_exposure=2.0

fail() {
    printf 'systemd-check: FAILED: %s\n' "$*" >&2
    exit 1
}

missing=()
for package in systemd procps; do
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing"

for setting in DynamicUser=yes StateDirectory=herald WatchdogSec= Type=notify; do
    grep -q "^$setting" "$unit" || fail "$unit lacks $setting"
done

binary="${CARGO_TARGET_DIR:-target}/debug/herald"
[ -x "$binary" ] || cargo build --locked --bin herald
binary=$(realpath "$binary")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s#^ExecStart=/usr/local/bin/herald #ExecStart=$binary #" "$unit" >"$work/herald.service"
grep -q "^ExecStart=$binary serve" "$work/herald.service" || fail "$unit: ExecStart is not /usr/local/bin/herald serve"
if ! said=$(systemd-analyze verify "$work/herald.service" 2>&1) || [ -n "$said" ]; then
    fail "systemd-analyze verify $unit: ${said:-failed}"
fi

report=$(systemd-analyze security --offline=yes "$unit" 2>&1) || {
    printf '%s\n' "$report" >&2
    fail "systemd-analyze security $unit failed"
}
exposure=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$exposure" ] || {
    printf '%s\n' "$report" >&2
    fail "no exposure level in systemd-analyze's report"
}
if ! awk -v level="$exposure" -v max="$max_exposure" 'BEGIN { exit !(level <= max) }'; then
    printf '%s\n' "$report" | grep '✗' >&2
    fail "$unit: exposure $exposure, above $max_exposure"
fi
printf 'systemd-check: %s verifies cleanly; exposure %s (at most %s)\n' "$unit" "$exposure" "$max_exposure" >&2
