#!/usr/bin/env bash
# Build wsgid's Debian package: `packaging/build-deb.sh [OUTDIR]` (default: dist/).
#
# Copies the source tree to a temporary directory, puts packaging/debian/ there as debian/,
# fetches the wheels (the only step that needs the network; see lib.sh), then runs
# `dpkg-buildpackage -us -uc -b` with a clean PATH so that /usr/bin/python3, not a pyenv shim
# or a virtualenv, builds the package. The .deb (and .buildinfo/.changes) land in OUTDIR.
#
# Needs: apt-get install debhelper help2man python3-pip python3-venv (and lintian to check).
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

root=$(repo_root)
outdir=${1:-$root/dist}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

need_commands dpkg-buildpackage=dpkg-dev dh=debhelper help2man=help2man
[ -x "$SYSTEM_PYTHON" ] || die "$SYSTEM_PYTHON is missing: apt-get install python3"
"$SYSTEM_PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
    || die "$SYSTEM_PYTHON has no venv module: apt-get install python3-venv"

version=$(project_version "$root")
deb_version=$(dpkg-parsechangelog -l "$root/packaging/debian/changelog" -S Version)
[ "${deb_version%%-*}" = "$version" ] || die "packaging/debian/changelog is at $deb_version but \
daemon/wsgid/__init__.py says $version: add a changelog entry (dch -c packaging/debian/changelog)"

work=$(mktemp -d "${TMPDIR:-/tmp}/wsgid-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/wsgid-$version

stage_source "$root" "$src"
rm -rf "$src/debian"
cp -r "$root/packaging/debian" "$src/debian"
build_wheelhouse "$src" "$src/wheelhouse"

start=$(date +%s)
(
    cd "$src"
    env -i PATH="$CLEAN_PATH" HOME="$work" LANG=C.UTF-8 TMPDIR="$work" \
        ${SOURCE_DATE_EPOCH:+SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH"} \
        dpkg-buildpackage -us -uc -b
)
shopt -s nullglob
artifacts=("$work"/wsgid_"$version"*.deb "$work"/wsgid_"$version"*.buildinfo "$work"/wsgid_"$version"*.changes)
[ "${#artifacts[@]}" -gt 0 ] || die "dpkg-buildpackage produced no .deb"
cp "${artifacts[@]}" "$outdir"/
for f in "$outdir"/wsgid_"$version"*.deb; do
    echo "built $f in $(($(date +%s) - start)) s"
done
