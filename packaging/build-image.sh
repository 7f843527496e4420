#!/usr/bin/env bash
# Build wsgid's container image: `packaging/build-image.sh [TAG] [ENGINE-BUILD-ARGS...]`
# (default TAG: wsgid:VERSION, also tagged wsgid:latest).
#
# Builds packaging/docker/Dockerfile with podman (or docker; CONTAINER_ENGINE chooses) from a
# clean copy of the source tree, the context holding only what git tracks. podman builds with
# --isolation=chroot (PODMAN_ISOLATION overrides), which needs no container runtime and works
# where crun cannot set up cgroups. When the base image is neither present nor pullable (no
# registry reachable), a stand-in is made from Debian packages by make-base-image.sh.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

root=$(repo_root)
version=$(project_version "$root")
tag=${1:-wsgid:$version}
shift || true
engine=$(container_engine)
dockerfile=packaging/docker/Dockerfile
base=$(dockerfile_base_image "$root/$dockerfile")

if ! "$engine" image inspect "$base" >/dev/null 2>&1 && ! "$engine" pull "$base" >/dev/null 2>&1; then
    echo "build-image: cannot pull $base; making a stand-in from Debian packages" >&2
    "$root/packaging/make-base-image.sh" "$base"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/wsgid-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage_source "$root" "$work/context"

args=(build --file "$work/context/$dockerfile" --tag "$tag")
if [ "$engine" = podman ]; then
    args+=(--isolation="${PODMAN_ISOLATION:-chroot}" --format=docker)
fi
[ "$#" -eq 0 ] && [ "$tag" = "wsgid:$version" ] && args+=(--tag wsgid:latest)

start=$(date +%s)
"$engine" "${args[@]}" "$@" "$work/context"
echo "built image $tag with $engine in $(($(date +%s) - start)) s"
