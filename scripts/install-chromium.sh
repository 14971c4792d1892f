#!/usr/bin/env bash
# Installs Debian's chromium package for the console's browser tests
# (test/browser/, driven by playwright-core with executablePath, so no browser
# download). Idempotent: does nothing when /usr/bin/chromium exists.
# Measured here: about 35 s with the package lists already fetched.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "install-chromium: already installed: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
  echo "install-chromium: chromium is missing and installing it needs root" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq chromium >/dev/null
echo "install-chromium: installed $(/usr/bin/chromium --version 2>/dev/null | head -1)"
