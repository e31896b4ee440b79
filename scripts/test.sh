#!/usr/bin/env bash
# Runs herald's whole test suite on a fresh machine: installs what the tests need, then runs them.
# Tests needing external programs fail loudly when a program is missing; they never skip silently.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite needs: prometheus-alertmanager brings amtool, which the end-to-end tests drive against
# herald. Prometheus and PostgreSQL join this list with the tests that use them.
packages=(prometheus-alertmanager)
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
