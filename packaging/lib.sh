# shellcheck shell=bash
# Functions shared by the packaging build scripts (build-deb.sh, build-rpm.sh, build-image.sh).
#
# Sourced, never run. Every build works on a throw-away copy of the source tree (the files git
# tracks, plus new files not yet committed and not ignored), never on the work tree itself, so a
# build from a developer's checkout sees the same files as one from a clean clone, and nothing
# (.venv, caches, old dist/) leaks into a package.

# The system interpreter the packages run on. Not `python3` from PATH: on a developer machine
# that may be a pyenv shim, and the bundled compiled wheels must match /usr/bin/python3's ABI.
SYSTEM_PYTHON=/usr/bin/python3

# A PATH without pyenv shims, user bins or the project's .venv, for dpkg-buildpackage/rpmbuild.
CLEAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() {
    echo "${0##*/}: $*" >&2
    exit 1
}

# repo_root: the top of the source tree this script belongs to.
repo_root() {
    (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
}

# project_version ROOT: the version declared in daemon/wsgid/__init__.py.
project_version() {
    sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$1/daemon/wsgid/__init__.py"
}

# stage_source ROOT DEST: copy the source tree into DEST (created).
stage_source() {
    local root=$1 dest=$2
    mkdir -p "$dest"
    if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        # Tracked files that still exist, plus untracked files that are not ignored. The inner
        # script is single-quoted on purpose: its "$f" belongs to sh, not to this shell.
        # shellcheck disable=SC2016
        git -C "$root" ls-files -z --cached --others --exclude-standard \
            | (cd "$root" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) \
            | tar -C "$root" --null -T - -cf - \
            | tar -C "$dest" -xf -
    else
        # A release tarball: take everything but build output and local environments.
        tar -C "$root" --exclude=./.venv --exclude=./dist --exclude=./build \
            --exclude='*/__pycache__' -cf - . | tar -C "$dest" -xf -
    fi
}

# build_wheelhouse SRC DEST: wheels of wsgid and of every dependency, for the system Python.
# wsgid's own wheel has its per-request modules compiled (setup.py, WSGID__COMPILE=yes: no
# silent fallback to pure Python), which needs gcc and python3-dev.
#
# If WSGID_WHEELHOUSE names a directory that already holds them (a test session builds them
# once for the .deb and the .rpm), they are copied from there; otherwise pip resolves against
# the package index, with the versions pinned in packaging/constraints.txt.
build_wheelhouse() {
    local src=$1 dest=$2
    mkdir -p "$dest"
    if [ -n "${WSGID_WHEELHOUSE:-}" ] && compgen -G "$WSGID_WHEELHOUSE/wsgid-*.whl" >/dev/null; then
        cp "$WSGID_WHEELHOUSE"/*.whl "$dest"/
        return
    fi
    "$SYSTEM_PYTHON" -m pip --version >/dev/null 2>&1 \
        || die "$SYSTEM_PYTHON has no pip: apt-get install python3-pip python3-venv"
    env -i PATH="$CLEAN_PATH" HOME="${TMPDIR:-/tmp}" LANG=C.UTF-8 \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 WSGID__COMPILE=yes \
        "$SYSTEM_PYTHON" -m pip wheel --quiet --wheel-dir "$dest" \
        --constraint "$src/packaging/constraints.txt" "$src"
}

# need_commands CMD...: fail with the apt packages to install when a tool is missing.
need_commands() {
    local missing=()
    local cmd
    for cmd in "$@"; do
        command -v "${cmd%%=*}" >/dev/null 2>&1 || missing+=("${cmd#*=}")
    done
    [ "${#missing[@]}" -eq 0 ] || die "missing tools; install them with: apt-get install ${missing[*]}"
}

# container_engine: $CONTAINER_ENGINE, else podman, else docker.
container_engine() {
    local engine=${CONTAINER_ENGINE:-}
    if [ -z "$engine" ]; then
        if command -v podman >/dev/null 2>&1; then
            engine=podman
        elif command -v docker >/dev/null 2>&1; then
            engine=docker
        else
            die "no container engine: apt-get install podman (or install docker)"
        fi
    fi
    echo "$engine"
}

# dockerfile_base_image DOCKERFILE: the default of its PYTHON_IMAGE build argument.
dockerfile_base_image() {
    sed -n 's/^ARG PYTHON_IMAGE=//p' "$1"
}
