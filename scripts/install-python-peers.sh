#!/usr/bin/env bash
# Creates the Python virtual environment the test suite uses as AWS peers:
# moto's server (an AWS-compatible STS, IAM, S3), boto3 and the AWS CLI, at the
# versions pinned in scripts/peers/python-requirements.txt, in
#   ${POD_IDENTITY_PEERS_CACHE:-~/.cache/pod-identity}/venv
# Idempotent: when the venv was built from the same requirements file it only
# checks that the executables are there.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REQUIREMENTS="$HERE/peers/python-requirements.txt"
CACHE="${POD_IDENTITY_PEERS_CACHE:-$HOME/.cache/pod-identity}"
VENV="$CACHE/venv"
PYTHON="${PYTHON:-python3}"

log() { printf 'install-python-peers: %s\n' "$*"; }
die() { printf 'install-python-peers: error: %s\n' "$*" >&2; exit 1; }

[ -f "$REQUIREMENTS" ] || die "missing $REQUIREMENTS"
want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
ready() {
  [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$want" ] &&
    [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/aws" ] &&
    "$VENV/bin/python" -c 'import boto3, moto' 2>/dev/null
}

if ready; then
  log "up to date in $VENV"
  exit 0
fi

command -v "$PYTHON" >/dev/null || die "$PYTHON not found (Python 3.9+ with venv is needed)"
start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV with $("$PYTHON" --version 2>&1)"
  mkdir -p "$CACHE"
  "$PYTHON" -m venv "$VENV" || die "python -m venv failed (Debian: apt-get install python3-venv)"
fi
log "installing $(grep -v '^#' "$REQUIREMENTS" | grep -v '^$' | tr '\n' ' ')"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade -r "$REQUIREMENTS" ||
  die "pip install failed"
printf '%s\n' "$want" >"$VENV/.requirements.sha256"
ready || die "venv incomplete after install (moto_server, aws, boto3 expected in $VENV)"
log "ready in $(($(date +%s) - start)) s: $("$VENV/bin/aws" --version 2>&1), moto $("$VENV/bin/python" -c 'import moto; print(moto.__version__)')"
