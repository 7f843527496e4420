#!/usr/bin/env bash
# Build wsgid's RPM: `packaging/build-rpm.sh [OUTDIR]` (default: dist/).
#
# Makes the spec's sources from the source tree (a tarball of it, a tarball of the wheels, the
# sysusers file), then runs `rpmbuild -bb`. On a machine whose rpm lacks the systemd and Python
# macros (Debian: apt-get install rpm), it loads packaging/rpm/macros.debian-compat and skips
# the BuildRequires check (--nodeps), since Debian's packages are not in the rpm database.
# The .rpm lands in OUTDIR.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh"

root=$(repo_root)
outdir=${1:-$root/dist}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)

need_commands rpmbuild=rpm help2man=help2man
[ -x "$SYSTEM_PYTHON" ] || die "$SYSTEM_PYTHON is missing"

version=$(project_version "$root")
spec_version=$(sed -n 's/^Version:[[:space:]]*//p' "$root/packaging/rpm/wsgid.spec")
[ "$spec_version" = "$version" ] || die "packaging/rpm/wsgid.spec is at $spec_version but \
daemon/wsgid/__init__.py says $version: update Version: and %changelog"

work=$(mktemp -d "${TMPDIR:-/tmp}/wsgid-rpm.XXXXXX")
trap 'rm -rf "$work"' EXIT
top=$work/rpmbuild
mkdir -p "$top"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}

src=$work/wsgid-$version
stage_source "$root" "$src"
tar -C "$work" -czf "$top/SOURCES/wsgid-$version.tar.gz" "wsgid-$version"
build_wheelhouse "$src" "$work/wheelhouse"
tar -C "$work/wheelhouse" -czf "$top/SOURCES/wsgid-$version-wheels.tar.gz" .
cp "$src/systemd/wsgid.sysusers.conf" "$top/SOURCES/wsgid.sysusers"
cp "$root/packaging/rpm/wsgid.spec" "$top/SPECS/"

args=(-bb --define "_topdir $top")
if [ "$(rpm --eval '%{?_unitdir}')" = "" ]; then
    # Not an RPM distribution: stand-in macros, and no BuildRequires check against rpmdb.
    args+=(--nodeps --load="$root/packaging/rpm/macros.debian-compat")
fi

start=$(date +%s)
env -i PATH="$CLEAN_PATH" HOME="$work" LANG=C.UTF-8 TMPDIR="$work" \
    ${SOURCE_DATE_EPOCH:+SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH"} \
    rpmbuild "${args[@]}" "$top/SPECS/wsgid.spec"
shopt -s nullglob
rpms=("$top"/RPMS/*/wsgid-"$version"-*.rpm)
[ "${#rpms[@]}" -gt 0 ] || die "rpmbuild produced no .rpm"
cp "${rpms[@]}" "$outdir"/
for f in "${rpms[@]}"; do
    echo "built $outdir/${f##*/} in $(($(date +%s) - start)) s"
done
