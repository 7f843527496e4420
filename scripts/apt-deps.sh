#!/usr/bin/env bash
# Install the Debian packages the tests need, only those not installed yet.
#
#   scripts/apt-deps.sh            the default list below
#   scripts/apt-deps.sh PKG...     these packages instead
#
# Runs `apt-get update` at most once, and only when something is missing, so it costs a few
# milliseconds on a machine that already has everything.
set -euo pipefail

# curl: the demo and unix-socket tests drive wsgid with the real curl binary.
default_packages=(curl)

if [ "$#" -gt 0 ]; then
    packages=("$@")
else
    packages=("${default_packages[@]}")
fi

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then
        sudo=(sudo)
    else
        echo "apt-deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "apt-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
