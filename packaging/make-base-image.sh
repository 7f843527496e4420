#!/usr/bin/env bash
# Make a stand-in for the Dockerfile's base image from Debian packages, for machines that
# reach Debian's archive but no image registry:
#
#   packaging/make-base-image.sh [TAG]     (default TAG: the Dockerfile's PYTHON_IMAGE)
#
# mmdebstrap builds a minimal Debian 12 root with python3 and python3-venv (what the
# Dockerfile's stages use: python3 -m venv, pip from ensurepip, useradd), which is imported
# into the container engine and tagged TAG. The stand-in runs Debian's Python 3.11, not 3.12:
# good for building and testing the image, not for publishing it.
#
# Needs: apt-get install mmdebstrap podman (or docker).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

root=$(repo_root)
tag=${1:-$(dockerfile_base_image "$root/packaging/docker/Dockerfile")}
engine=$(container_engine)
need_commands mmdebstrap=mmdebstrap

work=$(mktemp -d "${TMPDIR:-/tmp}/wsgid-base.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Where this machine's pip is told to trust a particular CA bundle (PIP_CERT: a TLS-inspecting
# proxy on the way to the package index, say), the stand-in carries the same bundle and
# setting, so that pip in the Dockerfile's build stage reaches the index as the host does.
hooks=()
changes=(--change 'CMD ["python3"]')
if [ -n "${PIP_CERT:-}" ] && [ -f "$PIP_CERT" ]; then
    hooks+=(--customize-hook="upload $PIP_CERT /etc/ssl/certs/ca-certificates.crt")
    changes+=(--change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt")
fi

start=$(date +%s)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' "${hooks[@]}" \
    bookworm "$work/rootfs.tar" "$mirror"
"$engine" import "${changes[@]}" "$work/rootfs.tar" "$tag" >/dev/null
echo "made $tag (Debian 12 with python3) with $engine in $(($(date +%s) - start)) s"
