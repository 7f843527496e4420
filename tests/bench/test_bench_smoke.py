"""Smoke test of the benchmark (`bench/run --smoke`), so that it cannot rot.

It checks that the bench runs end to end and produces its table: a row per server, and an answer
from wsgid. It asserts no timing: numbers from a shared CI machine mean nothing here. Skipped, with
the reason, when wrk cannot be installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run"
EXIT_PREREQUISITE = 3  # bench/run: wrk or bench/.venv could not be installed
SERVER_LABELS = ("wsgid sync", "wsgid gthread", "gunicorn sync", "gunicorn gthread", "granian")


@pytest.mark.timeout(900)  # the first run installs bench/.venv (gunicorn, granian, wsgid)
def test_bench_smoke(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    raw = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--out", str(out), "--json", str(raw)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
    )
    if proc.returncode == EXIT_PREREQUISITE and "wrk" in proc.stderr:
        pytest.skip(f"wrk cannot be installed here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, f"bench/run failed:\n{proc.stdout}\n{proc.stderr}"

    report = out.read_text()
    assert report.strip() == proc.stdout.strip(), "the table printed is the one written"
    assert "## Throughput and latency" in report
    assert "## Idle memory and start-up" in report
    rows = [ln for ln in report.splitlines() if ln.startswith("| ")]
    for label in SERVER_LABELS:
        # one row per server in the memory/start-up table, and rows in the throughput table
        assert any(ln.startswith(f"| {label} |") for ln in rows), f"no row for {label}"
        assert any(f"| {label}" in ln and not ln.startswith(f"| {label} |") for ln in rows), (
            f"no throughput row for {label}"
        )

    results = json.loads(raw.read_text())
    cells = {(c["scenario"], c["server"]): c for c in results["scenarios"]}
    hello = cells[("hello", "wsgid-sync")]
    assert hello["failed"] is None, f"wsgid sync did not answer: {hello['failed']}"
    assert hello["samples"] and hello["samples"][0]["requests"] > 0
    assert results["startup"]["wsgid-sync"]["failed"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RESULTS.md", "results.json"]


def test_breakdown_smoke() -> None:
    """`bench/breakdown.py` runs the real sync path and prints a row per request shape."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "breakdown.py"), "--count", "200", "--rounds", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [
        line
        for line in proc.stdout.splitlines()
        if line.startswith("| wrk") or line.startswith("| browser")
    ]
    assert len(rows) == 2, proc.stdout
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")[1:]]
        assert len(cells) == 3 and all(float(c) > 0 for c in cells), row
