#!/usr/bin/env bash
# Builds an image from a Dockerfile with buildah (no Docker daemon), on the
# local base images scripts/install-node-peers.sh makes, and writes it as a
# docker-archive that `ctr images import` (or `docker load`) reads:
#
#   scripts/build-image.sh [-f DOCKERFILE] -t NAME:TAG -o ARCHIVE [CONTEXT]
#
# Default: deploy/Dockerfile, context the repository root. The machine's CA
# bundle is mounted into every RUN step, with an npmrc naming it, so builds
# that reach the package registries trust it; neither is kept in the image.
# Prints the image's size. Layers are cached in the project's buildah storage
# (scripts/lib/buildah.sh), so a rebuild after a source change reuses `npm ci`.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${POD_IDENTITY_PEERS_CACHE:-$HOME/.cache/pod-identity}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
# shellcheck source=lib/buildah.sh
. "$HERE/lib/buildah.sh"

log() { printf 'build-image: %s\n' "$*"; }
die() { printf 'build-image: error: %s\n' "$*" >&2; exit 1; }

dockerfile="$HERE/../deploy/Dockerfile"; tag=""; archive=""
while getopts 'f:t:o:' opt; do
  case "$opt" in
    f) dockerfile="$OPTARG" ;;
    t) tag="$OPTARG" ;;
    o) archive="$OPTARG" ;;
    *) die "usage: $0 [-f DOCKERFILE] -t NAME:TAG -o ARCHIVE [CONTEXT]" ;;
  esac
done
shift $((OPTIND - 1))
context="${1:-$HERE/..}"
[ -n "$tag" ] && [ -n "$archive" ] || die "usage: $0 [-f DOCKERFILE] -t NAME:TAG -o ARCHIVE [CONTEXT]"
[ -f "$dockerfile" ] || die "no Dockerfile at $dockerfile"
command -v buildah >/dev/null || die "buildah is not installed; run scripts/install-node-peers.sh"
[ -f "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE (set CA_BUNDLE)"

# every FROM that is not a stage of this file must be a local image
stages=$(sed -n 's/^FROM[[:space:]].*[[:space:]]AS[[:space:]]\+\([^[:space:]]*\).*/\1/Ip' "$dockerfile")
for base in $(sed -n 's/^FROM[[:space:]]\+\(--[^[:space:]]*[[:space:]]\+\)*\([^[:space:]]*\).*/\2/Ip' "$dockerfile" | sort -u); do
  printf '%s\n' "$stages" | grep -qxF "$base" && continue
  bh_has_image "$base" || die "base image $base is not in $BUILDAH_STORE; run scripts/install-node-peers.sh"
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# npm reads /usr/local/etc/npmrc (its global config) in the official node image layout
printf 'cafile=%s\nupdate-notifier=false\n' "$CA_BUNDLE" >"$work/npmrc"

t0=$(date +%s)
log "building $tag from $dockerfile (buildah bud, chroot isolation, local base images only)"
bh bud --pull=never --isolation chroot --layers --force-rm --network host \
  --volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro" \
  --volume "$work/npmrc:/usr/local/etc/npmrc:ro" \
  -f "$dockerfile" -t "$tag" "$context" >"$work/build.log" 2>&1 \
  || { tail -40 "$work/build.log" >&2; die "buildah bud of $dockerfile failed (its log ends above)"; }
mkdir -p "$(dirname "$archive")"
rm -f "$archive"
bh push -q "$tag" "docker-archive:$archive:$tag" >/dev/null || die "cannot write $archive"
# earlier builds of the same repository go (their layers stay cached while used)
repository="${tag%:*}"
for old in $(bh images --format '{{.Name}}:{{.Tag}}' | grep -F "$repository:" | grep -vxF "$tag" || true); do
  [ "${old%:*}" = "$repository" ] && bh rmi "$old" >/dev/null 2>&1 || true
done
log "built $tag in $(($(date +%s) - t0)) s: $(bh images --format '{{.Size}}' "$tag" | head -1) unpacked, archive $(du -m "$archive" | cut -f1) MB ($archive)"
