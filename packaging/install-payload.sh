#!/usr/bin/env bash
# Install wsgid's package payload into a staging root: the one definition of what the .deb and
# the .rpm contain, called from debian/rules and from the spec's %install.
#
#   install-payload.sh DESTDIR UNITDIR WHEELHOUSE
#
#   DESTDIR     the staging root (debian/wsgid, %{buildroot})
#   UNITDIR     where systemd units go: /lib/systemd/system (Debian), /usr/lib/systemd/system (RPM)
#   WHEELHOUSE  a directory holding the wsgid wheel and a wheel for every dependency
#
# Run from the top of the source tree. Lays out:
#   /usr/lib/wsgid/            a private virtual environment of the system Python (bin/python3 is a
#                              symlink to /usr/bin/python3) holding wsgid and its dependencies
#   /usr/bin/wsgid             the launcher, run by the venv's interpreter in isolated mode
#   UNITDIR/                   wsgid.service, wsgid.socket, wsgid@.service, wsgid@.socket
#   /usr/lib/sysusers.d/wsgid.conf, /usr/lib/tmpfiles.d/wsgid.conf
#   /etc/wsgid/app.toml        the configuration (a conffile / %config(noreplace))
#   /etc/logrotate.d/wsgid     rotation of /var/log/wsgid/*.log, reopened with USR1
#   /usr/share/man/man1/wsgid.1  generated from `wsgid --help` with help2man
# No byte-code is written: Debian compiles it in postinst, the spec with %py_byte_compile.
set -euo pipefail

[ "$#" -eq 3 ] || { echo "usage: $0 DESTDIR UNITDIR WHEELHOUSE" >&2; exit 2; }
dest=$1
unitdir=$2
wheelhouse=$3
python=/usr/bin/python3
prefix=/usr/lib/wsgid
pkg=packaging

[ -f "$pkg/app.toml" ] || { echo "$0: run from the top of the wsgid source tree" >&2; exit 2; }

pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
venv=$dest$prefix
site=$venv/lib/python$pyver/site-packages

# The venv is created in place and stays valid once installed: its interpreter is an absolute
# symlink to /usr/bin/python3, and Python finds site-packages relative to pyvenv.cfg.
rm -rf "$venv"
"$python" -m venv --without-pip "$venv"
rm -rf "${venv:?}"/bin/activate* "${venv:?}"/bin/Activate.ps1 "${venv:?}/include" "${venv:?}/lib64"
# pyvenv.cfg as written names the build directory ("command = ..."); keep only what Python reads.
cat >"$venv/pyvenv.cfg" <<EOF
home = /usr/bin
include-system-site-packages = false
version = $("$python" -c 'import platform; print(platform.python_version())')
EOF

env PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 "$python" -m pip install --quiet \
    --no-index --find-links "$wheelhouse" --no-compile --no-warn-script-location \
    --target "$site" wsgid
# Console scripts written by pip point at the build interpreter; /usr/bin/wsgid replaces them.
rm -rf "${site:?}/bin"
# pip's INSTALLER/REQUESTED/direct_url markers are install-time state, not payload.
find "$site" -path '*.dist-info/*' \( -name REQUESTED -o -name direct_url.json \) -delete

install -D -m 0755 "$pkg/wsgid.launcher" "$dest/usr/bin/wsgid"

for unit in wsgid.service wsgid.socket wsgid@.service wsgid@.socket; do
    install -D -m 0644 "systemd/$unit" "$dest$unitdir/$unit"
done
install -D -m 0644 systemd/wsgid.sysusers.conf "$dest/usr/lib/sysusers.d/wsgid.conf"
install -D -m 0644 systemd/wsgid.tmpfiles.conf "$dest/usr/lib/tmpfiles.d/wsgid.conf"

install -D -m 0644 "$pkg/app.toml" "$dest/etc/wsgid/app.toml"
install -D -m 0644 "$pkg/wsgid.logrotate" "$dest/etc/logrotate.d/wsgid"

# The man page documents exactly the options this build has: it is generated from --help.
# help2man wants GNU-style "Usage:" / "or:" lines without the per-command descriptions (those
# are in wsgid.h2m), so it runs wsgid through a small filter.
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
cat >"$shim/wsgid" <<EOF
#!/bin/sh
"$venv/bin/python3" -I -B -m wsgid "\$@" | awk '
    NR == 1, /^\$/ {
        if (/^\$/) { print; next }
        if (/^ +[^ w]/) next
        if (match(\$0, /[^ ]  +/)) \$0 = substr(\$0, 1, RSTART)
        sub(/^usage: /, "Usage: "); sub(/^ +wsgid /, "   or: wsgid ")
    }
    { print }'
EOF
chmod +x "$shim/wsgid"
# wsgid.h2m's FILES name the units where this package puts them.
sed "s|@UNITDIR@|$unitdir|g" "$pkg/wsgid.h2m" >"$shim/wsgid.h2m"
mkdir -p "$dest/usr/share/man/man1"
env -i PATH=/usr/bin:/bin LANG=C.UTF-8 COLUMNS=80 help2man --no-info --section=1 \
    --name="pre-fork WSGI HTTP/1.1 server daemon" --include="$shim/wsgid.h2m" \
    --output="$dest/usr/share/man/man1/wsgid.1" "$shim/wsgid"
find "$venv" -type d -name __pycache__ -prune -exec rm -rf {} +

# Last, since it leaves the staged interpreter unusable until installed: a relative link, as
# both distributions' policies want (/usr/lib/wsgid/bin/python3 -> /usr/bin/python3).
ln -sfn ../../../bin/python3 "$venv/bin/python3"
