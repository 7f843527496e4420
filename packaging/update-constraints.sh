#!/usr/bin/env bash
# Re-pin packaging/constraints.txt to the newest releases that satisfy pyproject.toml.
#
# Resolves wsgid's dependencies for the system Python with pip (no constraints), and rewrites
# the pin list below the file's comment header. Review the diff and run the packaging tests
# before committing it.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

root=$(repo_root)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

env -i PATH="$CLEAN_PATH" HOME="$work" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    "$SYSTEM_PYTHON" -m pip wheel --quiet --wheel-dir "$work/wheels" "$root"

out="$root/packaging/constraints.txt"
{
    sed -n '/^#/p; /^$/q' "$out"
    for wheel in "$work"/wheels/*.whl; do
        name=${wheel##*/}
        dist=${name%%-*}
        version=${name#*-}
        version=${version%%-*}
        [ "$dist" = wsgid ] && continue
        echo "${dist//_/-}==$version"
    done | sort -f
} >"$work/constraints.txt"
mv "$work/constraints.txt" "$out"
echo "updated $out"
