#!/usr/bin/env bash
# Builds the Kubernetes peers of the test suite from the Go module proxy:
# kube-apiserver and kubectl (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3)
# and helm (helm.sh/helm/v3), at pinned versions, into
#   ${POD_IDENTITY_PEERS_CACHE:-~/.cache/pod-identity}/k8s-v<K8S_VERSION>/bin/
# Idempotent: a binary whose stamp file names the pinned version is reused, so a
# second run is a fast no-op. The Go module and build caches live beside it
# (go/mod, go/build) unless GOMODCACHE / GOCACHE are set.
#
# Why a wrapper module: k8s.io/kubernetes requires its staging modules
# (k8s.io/api, k8s.io/apiserver, ...) at v0.0.0 and replaces them with local
# folders, so `go install k8s.io/kubernetes/cmd/kube-apiserver@v1.N.M` refuses it.
# A small module that requires k8s.io/kubernetes v1.N.M and replaces every
# staging module with its published v0.N.M builds it. etcd and helm get the same
# treatment (their go.mod files carry replace directives too, and a wrapper keeps
# each dependency graph separate from the others).
#
# Env: K8S_VERSION, ETCD_VERSION, HELM_VERSION override the pins;
#      POD_IDENTITY_PEERS_CACHE overrides the cache root;
#      PEERS_SKIP_HELM=1 skips helm; GO_BUILD_PARALLEL (default: nproc) sets go build -p.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.8}"   # the etcd that k8s.io/kubernetes v1.36.3 requires
HELM_VERSION="${HELM_VERSION:-3.22.0}"

CACHE="${POD_IDENTITY_PEERS_CACHE:-$HOME/.cache/pod-identity}"
ROOT="$CACHE/k8s-v$K8S_VERSION"
BIN="$ROOT/bin"
WORK="$ROOT/src"
export GOMODCACHE="${GOMODCACHE:-$CACHE/go/mod}"
export GOCACHE="${GOCACHE:-$CACHE/go/build}"
export GOFLAGS="-mod=mod"
export CGO_ENABLED=0
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
PARALLEL="${GO_BUILD_PARALLEL:-$(nproc)}"

log() { printf 'install-k8s: %s\n' "$*"; }
die() { printf 'install-k8s: error: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }

# have NAME VERSION: the binary exists and was built from VERSION.
have() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { printf '%s\n' "$2" >"$BIN/.$1.version"; }

need_k8s=1; need_etcd=1; need_helm=1
have kube-apiserver "$K8S_VERSION" && have kubectl "$K8S_VERSION" && need_k8s=0
have etcd "$ETCD_VERSION" && need_etcd=0
{ [ "${PEERS_SKIP_HELM:-0}" = 1 ] || have helm "$HELM_VERSION"; } && need_helm=0
if [ $need_k8s = 0 ] && [ $need_etcd = 0 ] && [ $need_helm = 0 ]; then
  log "up to date in $BIN (kube-apiserver/kubectl v$K8S_VERSION, etcd v$ETCD_VERSION$([ "${PEERS_SKIP_HELM:-0}" = 1 ] || echo ", helm v$HELM_VERSION"))"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH (Go 1.26+ is needed)"
mkdir -p "$BIN" "$WORK" "$GOMODCACHE" "$GOCACHE"
log "go: $(go version | cut -d' ' -f3-), GOMODCACHE=$GOMODCACHE, GOCACHE=$GOCACHE, -p $PARALLEL"

# go_build DIR LABEL OUT PKG...: builds PKGs into OUT (a directory ending in / for
# several packages, else the binary's path), printing progress every 100 packages.
go_build() {
  local dir="$1" label="$2" out="$3"; shift 3
  local start count=0 line logfile="$dir/build.log"
  start=$(now)
  log "$label: compiling (first build takes minutes; progress every 100 packages)"
  set +e
  (cd "$dir" && go build -p "$PARALLEL" -v -trimpath -ldflags="-s -w $LDFLAGS_EXTRA" -o "$out" "$@" 2>&1) | tee "$logfile" | while IFS= read -r line; do
    count=$((count + 1))
    if [ $((count % 100)) = 0 ]; then log "$label: $count packages compiled ($(($(now) - start)) s)"; fi
  done
  local rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" != 0 ]; then
    grep -v '^[a-zA-Z0-9._/-]*$' "$logfile" | tail -40 >&2 || true
    die "$label: go build failed (exit $rc); full log: $logfile"
  fi
  log "$label: built in $(($(now) - start)) s"
}

# module_dir NAME: a fresh wrapper module directory.
module_dir() { local d="$WORK/$1"; rm -rf "$d"; mkdir -p "$d"; echo "$d"; }

if [ $need_k8s = 1 ]; then
  t0=$(now)
  dir=$(module_dir kubernetes)
  log "kubernetes v$K8S_VERSION: resolving k8s.io/kubernetes and its staging modules"
  modfile=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$modfile" ] || die "could not download k8s.io/kubernetes@v$K8S_VERSION"
  staging_version="v0.${K8S_VERSION#1.}"
  {
    printf 'module pod-identity.test/peers/kubernetes\n\ngo 1.26.0\n\n'
    printf 'require k8s.io/kubernetes v%s\n\n' "$K8S_VERSION"
    printf 'tool (\n\tk8s.io/kubernetes/cmd/kube-apiserver\n\tk8s.io/kubernetes/cmd/kubectl\n)\n\nreplace (\n'
    # every `k8s.io/x => ./staging/src/k8s.io/x` becomes `k8s.io/x => k8s.io/x v0.N.M`
    sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\)[[:space:]]*=>[[:space:]]*\./staging/src/.*$#\t\1 => \1 '"$staging_version"'#p' "$modfile"
    printf ')\n'
  } >"$dir/go.mod"
  [ "$(grep -c ' => ' "$dir/go.mod")" -gt 10 ] || die "found no staging replaces in $modfile"
  (cd "$dir" && go mod tidy) || die "go mod tidy failed for the kubernetes wrapper ($dir/go.mod)"
  log "kubernetes: modules resolved in $(($(now) - t0)) s"
  build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
  v=k8s.io/component-base/version
  LDFLAGS_EXTRA="-X $v.gitVersion=v$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean -X $v.buildDate=$build_date"
  LDFLAGS_EXTRA="$LDFLAGS_EXTRA -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  go_build "$dir" "kube-apiserver+kubectl v$K8S_VERSION" "$BIN/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
  stamp kube-apiserver "$K8S_VERSION"; stamp kubectl "$K8S_VERSION"
  log "kubernetes: done in $(($(now) - t0)) s"
fi

if [ $need_etcd = 1 ]; then
  t0=$(now)
  dir=$(module_dir etcd)
  {
    printf 'module pod-identity.test/peers/etcd\n\ngo 1.26.0\n\n'
    printf 'require go.etcd.io/etcd/server/v3 v%s\n\ntool go.etcd.io/etcd/server/v3\n' "$ETCD_VERSION"
  } >"$dir/go.mod"
  (cd "$dir" && go mod tidy) || die "go mod tidy failed for the etcd wrapper ($dir/go.mod)"
  LDFLAGS_EXTRA=""
  # the main package is the server module's root (go would name its binary "server")
  go_build "$dir" "etcd v$ETCD_VERSION" "$BIN/etcd" go.etcd.io/etcd/server/v3
  stamp etcd "$ETCD_VERSION"
  log "etcd: done in $(($(now) - t0)) s"
fi

if [ $need_helm = 1 ]; then
  t0=$(now)
  dir=$(module_dir helm)
  {
    printf 'module pod-identity.test/peers/helm\n\ngo 1.26.0\n\n'
    printf 'require helm.sh/helm/v3 v%s\n\ntool helm.sh/helm/v3/cmd/helm\n' "$HELM_VERSION"
  } >"$dir/go.mod"
  (cd "$dir" && go mod tidy) || die "go mod tidy failed for the helm wrapper ($dir/go.mod)"
  LDFLAGS_EXTRA="-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
  go_build "$dir" "helm v$HELM_VERSION" "$BIN/helm" helm.sh/helm/v3/cmd/helm
  stamp helm "$HELM_VERSION"
  log "helm: done in $(($(now) - t0)) s"
fi

log "ready in $BIN: $(ls "$BIN" | tr '\n' ' ')"
