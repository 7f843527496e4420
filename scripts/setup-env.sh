#!/usr/bin/env bash
# Create .venv (if missing) and install wsgid into it, editable.
#
#   scripts/setup-env.sh          runtime dependencies only (what `make run` needs)
#   scripts/setup-env.sh test     plus the test extra: pytest, Flask, Django, ruff, mypy, ...
#
# Idempotent and fast when nothing changed: the install is skipped while a stamp file in .venv
# is newer than pyproject.toml and setup.py, and no compiled module is older than its source.
# The per-request modules are compiled in place by the install (setup.py, mypyc), beside their
# sources: Python imports the compiled one, so one left older than its edited source is rebuilt.
# WSGID__COMPILE=no installs pure Python.
set -euo pipefail
cd "$(dirname "$0")/.."

extra="${1:-}"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
    echo "setup-env: creating .venv with $("$python" --version 2>&1)"
    if ! "$python" -m venv .venv; then
        # Debian's own python3 ships venv/ensurepip separately; pyenv's Python has them built in.
        rm -rf .venv
        scripts/apt-deps.sh python3-venv
        "$python" -m venv .venv
    fi
fi

spec="."
stamp=".venv/.wsgid-installed"
if [ -n "$extra" ]; then
    spec=".[$extra]"
    stamp=".venv/.wsgid-installed-$extra"
fi

fresh() { [ -f "$1" ] && [ "$1" -nt pyproject.toml ] && [ "$1" -nt setup.py ]; }
stale_compiled() {
    local module
    for module in daemon/wsgid/*.so daemon/wsgid/*/*.so; do
        [ -e "$module" ] || continue
        # Its source: a module's .py, or the .c of one written in C (setup.py's C_SOURCES).
        [ "${module%%.*}.py" -nt "$module" ] && return 0
        [ "${module%%.*}.c" -nt "$module" ] && return 0
    done
    return 1
}
# The test install is a superset of the runtime one.
if ! stale_compiled && { fresh "$stamp" || { [ -z "$extra" ] && fresh .venv/.wsgid-installed-test; }; }; then
    exit 0
fi
echo "setup-env: pip install -e '$spec'"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
touch "$stamp"
