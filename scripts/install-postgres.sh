#!/usr/bin/env bash
# Installs PostgreSQL from Debian's packages for the test suite (the store
# contract suite, the replica and migration tests). Idempotent: does nothing
# when a server binary and the `postgres` system user are already present.
# The tests start their own throwaway clusters (test/peers/postgres.ts), so the
# package's default cluster is neither needed nor created.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

find_postgres_bin() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/postgres" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

if bin_dir=$(find_postgres_bin) && id -u postgres >/dev/null 2>&1; then
  echo "install-postgres: PostgreSQL already installed: $("$bin_dir/postgres" --version) ($bin_dir)"
  exit 0
fi

apt_root install-postgres PostgreSQL

echo "install-postgres: installing PostgreSQL from Debian's packages"
# postgresql-common first, so the package can be told not to create and start
# a system-wide "main" cluster (the documented way, README.Debian).
apt_install --no-install-recommends postgresql-common
"${SUDO[@]}" sed -i 's/^#\?\s*create_main_cluster\s*=.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
apt_install --no-install-recommends postgresql postgresql-client

bin_dir=$(find_postgres_bin) || { echo "install-postgres: postgresql installed but no server binary found under /usr/lib/postgresql" >&2; exit 1; }
id -u postgres >/dev/null 2>&1 || { echo "install-postgres: the postgres system user is missing after install" >&2; exit 1; }
echo "install-postgres: installed $("$bin_dir/postgres" --version) ($bin_dir)"
