#!/usr/bin/env bash
# Installs Debian's chromium package for the console's browser tests
# (test/browser/, driven by playwright-core with executablePath, so no browser
# download). Idempotent: does nothing when /usr/bin/chromium exists.
# Measured here: about 35 s with the package lists already fetched.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
if [ -x /usr/bin/chromium ]; then
  echo "install-chromium: already installed: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
  exit 0
fi
apt_root install-chromium chromium
apt_install chromium
echo "install-chromium: installed $(/usr/bin/chromium --version 2>/dev/null | head -1)"
