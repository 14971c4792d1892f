# shellcheck shell=bash
# Sourced by scripts/install-node-peers.sh and scripts/build-image.sh: one
# buildah storage for the project's images, under the peers cache, so builds
# never touch the machine's /var/lib/containers and a second build reuses the
# layers of the first. Needs CACHE set by the caller.
BUILDAH_STORE="$CACHE/images/buildah"

# bh ARGS...: buildah with the project's storage (overlay, rootful), in a
# private mount namespace of its own: the storage's bind mount and every
# layer it mounts are gone when the command ends, never left on the machine.
bh() {
  unshare --mount --propagation private -- \
    buildah --root "$BUILDAH_STORE/storage" --runroot "$BUILDAH_STORE/run" --storage-driver overlay "$@"
}

# buildah's network state (a CNI lock file, made even for --network host)
# stays in the project's storage instead of the machine's /etc/cni/net.d
mkdir -p "$BUILDAH_STORE"
printf '[network]\nnetwork_config_dir = "%s/cni"\n' "$BUILDAH_STORE" >"$BUILDAH_STORE/containers.conf"
export CONTAINERS_CONF="$BUILDAH_STORE/containers.conf"

# bh_has_image NAME: the image is in the project's storage.
bh_has_image() { bh inspect --type image "$1" >/dev/null 2>&1; }
