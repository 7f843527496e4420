#!/usr/bin/env bash
# The whole test command (`make test`, and so CI's .ci/run): set up the environment on a fresh
# machine, then lint, type-check and run every test.
#
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/integration -k flask`.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/apt-deps.sh
scripts/setup-env.sh test

# Every stage runs even when an earlier one failed, so one run reports everything; the exit
# status is non-zero if any stage failed.
failed=()

echo "== ruff check"
.venv/bin/ruff check . || failed+=("ruff")

echo "== ruff format --check"
.venv/bin/ruff format --check . || failed+=("ruff format")

echo "== mypy"
.venv/bin/mypy || failed+=("mypy")

echo "== pytest"
# A private --basetemp, removed on exit: no run leaves temporary directories behind, and runs
# side by side on one machine cannot prune each other's (pytest keeps only the last few
# /tmp/pytest-of-USER/pytest-N directories, whoever made them).
basetemp="$(mktemp -d "${TMPDIR:-/tmp}/wsgid-pytest-XXXXXX")"
trap 'rm -rf "$basetemp"' EXIT
rc=0
.venv/bin/python -m pytest --basetemp="$basetemp/tmp" "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    # pytest's "no tests collected": not a failure of the code under test; say so loudly.
    echo "test.sh: pytest collected no tests (exit 5)" >&2
elif [ "$rc" -ne 0 ]; then
    failed+=("pytest (exit $rc)")
fi

if [ "${#failed[@]}" -gt 0 ]; then
    echo "test.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "test.sh: ruff, ruff format, mypy and pytest passed"
