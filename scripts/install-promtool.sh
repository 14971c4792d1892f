#!/usr/bin/env bash
# Installs promtool (Prometheus' rule checker) from Debian's `prometheus`
# package, for the test that checks the Helm chart's PrometheusRule
# (test/integration/monitoring.test.ts). Idempotent: does nothing when
# promtool is already on PATH or in /usr/bin.
#
# Debian's package is much faster than building
# github.com/prometheus/prometheus/cmd/promtool from the Go module proxy.
# The package also holds the Prometheus server and its systemd unit: a
# policy-rc.d that answers 101 is put in place for the install when the
# machine has none, so that no Prometheus service is started (containers
# usually have one already; a CI host with systemd would otherwise start a
# server on port 9090).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

find_promtool() {
  command -v promtool 2>/dev/null || { [ -x /usr/bin/promtool ] && echo /usr/bin/promtool; }
}

if bin=$(find_promtool); then
  echo "install-promtool: promtool already installed: $("$bin" --version 2>&1 | head -1) ($bin)"
  exit 0
fi

apt_root install-promtool promtool

policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# put here by pod-identity scripts/install-promtool.sh for the length of its install\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 755 "$policy"
  own_policy=true
fi
cleanup() { if $own_policy; then "${SUDO[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

echo "install-promtool: installing Debian's prometheus package (for promtool)"
apt_install --no-install-recommends prometheus

bin=$(find_promtool) || { echo "install-promtool: prometheus installed but no promtool found" >&2; exit 1; }
echo "install-promtool: installed $("$bin" --version 2>&1 | head -1) ($bin)"
