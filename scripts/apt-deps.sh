#!/usr/bin/env bash
# Install the Debian packages the tests need, only those not installed yet.
#
#   scripts/apt-deps.sh            the default list below
#   scripts/apt-deps.sh PKG...     these packages instead
#
# Runs `apt-get update` at most once, and only when something is missing, so it costs a few
# milliseconds on a machine that already has everything.
set -euo pipefail

# Everything the whole suite drives for real, installed in one apt run:
# - gcc, libc6-dev, python3-dev: compiling the per-request modules (setup.py) for the test
#   venv's Python and for the packages' system Python;
# - curl: the demo and unix-socket tests use the real curl binary;
# - wrk: the benchmark (bench/run) and its smoke test;
# - jq, goaccess, rsyslog, logrotate: the logging tests parse and rotate real output;
# - systemd, util-linux, python3: a real systemd booted in a namespace (tests/system);
# - dpkg-dev debhelper help2man lintian python3-pip python3-venv: the Debian package;
# - rpm rpmlint: the RPM; podman runc mmdebstrap uidmap shellcheck: the container image;
# - haproxy, nginx, libnginx-mod-stream: the real proxies in front of wsgid (PROXY protocol
#   v1/v2, forwarded headers) in tests/integration/test_behind_proxy*.py; haproxy also in the
#   benchmark's proxy scenario (bench/run) and its smoke test;
# - prometheus: promtool checks every /metrics scrape, and a real Prometheus server scrapes
#   wsgid (tests/integration/test_prometheus.py);
# - openssl, sslscan: the TLS tests make their certificates and connect with the openssl CLI
#   (s_client), and scan wsgid's TLS listener for old protocols and weak ciphers
#   (tests/integration/test_tls.py); the benchmark's TLS scenarios make their certificate;
# - ssl-cert: the `ssl-cert` group of docs/tls.md's systemd drop-in, under a real systemd
#   (tests/system/test_packaging_systemd.py).
default_packages=(
    gcc libc6-dev python3-dev curl wrk jq goaccess rsyslog logrotate systemd util-linux python3
    dpkg-dev debhelper help2man lintian python3-pip python3-venv
    rpm rpmlint podman runc mmdebstrap uidmap shellcheck
    haproxy nginx libnginx-mod-stream prometheus openssl sslscan ssl-cert
)

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
