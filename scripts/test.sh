#!/usr/bin/env bash
# Runs herald's whole test suite on a fresh machine: installs what the tests need, then runs them.
# Tests needing external programs fail loudly when a program is missing; they never skip silently.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite needs: the end-to-end tests (tests/e2e) run the real Prometheus (`prometheus`),
# Alertmanager and amtool (`prometheus-alertmanager`) against herald. PostgreSQL joins this list with the tests that
# use it. The packages' own services may start on :9090/:9093; the tests never touch them: each runs its own processes
# on free loopback ports with temporary data directories.
packages=(prometheus prometheus-alertmanager)
missing=()
for package in "${packages[@]}"; do
    # Only a fully installed package counts (a removed one can linger as "deinstall ok config-files").
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

cargo test --workspace --locked

# The reliability suite's short form (RELIABILITY.md): destination outages, Retry-After, SIGKILL under load, mutated
# requests, a full disk. It runs the debug binary `cargo test` just built: the checks hold for any build, and a
# release build would take longer than the suite itself (the figures in RELIABILITY.md come from the full form on a
# release build). About 2 minutes.
scripts/reliability.sh --short --herald "${CARGO_TARGET_DIR:-target}/debug/herald"

# deploy/herald.service: `systemd-analyze verify` clean, `systemd-analyze security` exposure at most 2.0.
scripts/systemd-check.sh

# The container image, built from the Dockerfile offline and run as a user would (needs root; installs docker.io and
# debootstrap; several minutes, most of them the release build inside the image).
scripts/container-test.sh
