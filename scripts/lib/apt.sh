# shellcheck shell=bash
# Sourced by the install scripts that take peers from Debian's packages:
# one way to get root and to install packages.
#   apt_root <script-name> <what is missing>   sets SUDO (empty as root, sudo otherwise) or exits 1
#   apt_install [apt-get option|package]...     installs without prompts; the package lists are
#                                               fetched once an hour at most (.ci/run installs from
#                                               four scripts in a row)

apt_root() {
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "$1: $2 is missing and installing it needs root (run as root or install sudo)" >&2
    exit 1
  fi
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  local lists=/var/lib/apt/lists
  if [ -z "$(find "$lists" -maxdepth 1 -name '*_Packages*' -mmin -60 -print -quit 2>/dev/null)" ]; then
    "${SUDO[@]}" apt-get update -qq
  fi
  "${SUDO[@]}" apt-get install -y -qq "$@" >/dev/null
}
