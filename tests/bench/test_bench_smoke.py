"""Smoke test of the benchmark (`bench/run --smoke`), so that it cannot rot.

It checks that the bench runs end to end and produces its table: a row per server, an answer from
wsgid, and the `proxy` scenario: each wsgid worker through HAProxy, plain and with a PROXY v2
listener, and the ratio of the two in the report. It asserts no timing: numbers from a shared CI
machine mean nothing here. Skipped, with the reason, when wrk or HAProxy cannot be installed.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run"
EXIT_PREREQUISITE = 3  # bench/run: wrk, HAProxy or bench/.venv could not be installed
SERVER_LABELS = (
    "wsgid sync",
    "wsgid gthread",
    "gunicorn sync",
    "gunicorn gthread",
    "granian",
    "bjoern",
)
# The wsgid servers with a PROXY v2 listener (the `proxy` scenario alone), and their plain twins.
PROXY_V2_TWINS = {"wsgid-sync-proxy-v2": "wsgid-sync", "wsgid-gthread-proxy-v2": "wsgid-gthread"}


@dataclasses.dataclass(frozen=True)
class Smoke:
    """One `bench/run --smoke`: its markdown report, its JSON cells, the files it wrote."""

    report: str
    cells: dict[tuple[str, str], dict[str, Any]]
    startup: dict[str, dict[str, Any]]
    written: list[str]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Smoke:
    out_dir = tmp_path_factory.mktemp("bench")
    out = out_dir / "RESULTS.md"
    raw = out_dir / "results.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--out", str(out), "--json", str(raw)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=840,
    )
    if proc.returncode == EXIT_PREREQUISITE and ("wrk" in proc.stderr or "haproxy" in proc.stderr):
        pytest.skip(f"cannot be installed here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, f"bench/run failed:\n{proc.stdout}\n{proc.stderr}"
    report = out.read_text()
    assert report.strip() == proc.stdout.strip(), "the table printed is the one written"
    results = json.loads(raw.read_text())
    return Smoke(
        report,
        {(c["scenario"], c["server"]): c for c in results["scenarios"]},
        results["startup"],
        sorted(p.name for p in out_dir.iterdir()),
    )


@pytest.mark.timeout(900)  # the first run installs bench/.venv (gunicorn, granian, wsgid)
def test_bench_smoke(smoke: Smoke) -> None:
    assert "## Throughput and latency" in smoke.report
    assert "## Idle memory and start-up" in smoke.report
    rows = [ln for ln in smoke.report.splitlines() if ln.startswith("| ")]
    for label in SERVER_LABELS:
        # one row per server in the memory/start-up table, and rows in the throughput table
        assert any(ln.startswith(f"| {label} |") for ln in rows), f"no row for {label}"
        assert any(f"| {label}" in ln and not ln.startswith(f"| {label} |") for ln in rows), (
            f"no throughput row for {label}"
        )

    hello = smoke.cells[("hello", "wsgid-sync")]
    assert hello["failed"] is None, f"wsgid sync did not answer: {hello['failed']}"
    assert hello["samples"] and hello["samples"][0]["requests"] > 0
    assert smoke.startup["wsgid-sync"]["failed"] is None
    assert smoke.written == ["RESULTS.md", "results.json"]


@pytest.mark.timeout(900)  # the first test of the module may run the bench
def test_bench_smoke_proxy_v2_vs_plain_through_haproxy(smoke: Smoke) -> None:
    """Each wsgid worker answers through HAProxy with a plain and with a PROXY v2 listener, and
    the PROXY v2 row prints its ratio to the plain one (the acceptance item's measurement)."""
    for v2, plain in PROXY_V2_TWINS.items():
        for name in (plain, v2):
            cell = smoke.cells[("proxy", name)]
            assert cell["failed"] is None, f"{name} through HAProxy failed: {cell['failed']}"
            assert cell["samples"] and cell["samples"][0]["requests"] > 0, name
        assert v2 not in smoke.startup, "a PROXY listener has no start-up row (a plain GET)"
    rows = [ln for ln in smoke.report.splitlines() if ln.startswith("| hello keep-alive through")]
    v2_rows = [ln for ln in rows if "+ PROXY v2" in ln]
    assert len(rows) == 2 * len(v2_rows) == 2 * len(PROXY_V2_TWINS), rows
    for row in v2_rows:
        assert "PROXY v2 / plain (through HAProxy): " in row, row
    assert "send-proxy-v2" in smoke.report, "the report shows HAProxy's configuration"


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


@pytest.mark.timeout(900)  # the first test of the module may run the bench
def test_bench_smoke_access_log_rows_against_no_log(smoke: Smoke) -> None:
    """The sync worker writing each named access format to a file answers the hello scenario,
    and its row prints its ratio to the row without a log (the access log's cost)."""
    for fmt in ("json", "logfmt", "combined"):
        name = f"wsgid-sync-log-{fmt}"
        cell = smoke.cells[("hello", name)]
        assert cell["failed"] is None, f"{name} failed: {cell['failed']}"
        assert cell["samples"] and cell["samples"][0]["requests"] > 0, name
        assert name not in smoke.startup, "an access-log variant has no start-up row"
        rows = [ln for ln in smoke.report.splitlines() if f"{fmt} access log / none: " in ln]
        assert len(rows) == 1, smoke.report


@pytest.mark.timeout(900)  # the first test of the module may run the bench
def test_bench_smoke_bjoern_row_and_wsgid_over_bjoern_ratio(smoke: Smoke) -> None:
    """bjoern, the C baseline, is benchmarked beside the others and each wsgid row prints its
    ratio to it; on a machine where bjoern cannot be built, its row says why instead."""
    cell = smoke.cells[("hello", "bjoern")]
    header = next(ln for ln in smoke.report.splitlines() if ln.startswith("| scenario |"))
    column = [c.strip() for c in header.strip("|").split("|")].index("wsgid / bjoern")
    row = next(
        ln
        for ln in smoke.report.splitlines()
        if ln.startswith("| hello keep-alive, 50 conns | wsgid sync |")
    )
    ratio = [c.strip() for c in row.strip("|").split("|")][column]
    if cell["failed"] is not None:
        bjoern_row = next(ln for ln in smoke.report.splitlines() if "| bjoern | failed |" in ln)
        assert "bjoern" in bjoern_row.split("| failed |", 1)[1], bjoern_row  # the reason
        assert ratio == "—", row
        return
    assert cell["samples"] and cell["samples"][0]["requests"] > 0
    assert smoke.startup["bjoern"]["failed"] is None
    assert ratio.endswith("\N{MULTIPLICATION SIGN}") and float(ratio[:-1]) > 0, row


@pytest.mark.timeout(900)  # the first test of the module may run the bench
def test_bench_smoke_operated_row_against_plain(smoke: Smoke) -> None:
    """The sync worker with the metrics side listener, statsd and max_worker_memory on answers
    the hello scenario, and its row prints its ratio to the plain row (what they cost)."""
    cell = smoke.cells[("hello", "wsgid-sync-operated")]
    assert cell["failed"] is None, f"wsgid-sync-operated failed: {cell['failed']}"
    assert cell["samples"] and cell["samples"][0]["requests"] > 0
    assert "wsgid-sync-operated" not in smoke.startup
    what = "metrics listener, statsd and memory limit / none: "
    rows = [ln for ln in smoke.report.splitlines() if what in ln]
    assert len(rows) == 1, smoke.report


def test_bench_smoke_tls_hello_over_https_against_granian_and_gunicorn(smoke: Smoke) -> None:
    """wrk talks HTTPS to each server on the run's certificate; wsgid's row has both ratios."""
    for name in ("wsgid-sync", "granian", "gunicorn-sync"):
        cell = smoke.cells[("tls-hello", name)]
        assert cell["failed"] is None, f"{name} over TLS failed: {cell['failed']}"
        assert cell["samples"] and cell["samples"][0]["requests"] > 0, cell
    lines = smoke.report.splitlines()
    tls_rows = [ln for ln in lines if ln.startswith("| hello keep-alive over TLS")]
    row = next(ln for ln in tls_rows if "| wsgid sync |" in ln)
    assert row.count("\u00d7") >= 2, row  # wsgid / gunicorn and wsgid / granian
    assert "--certfile" in smoke.report and "--ssl-certificate" in smoke.report
    assert "openssl genpkey" in smoke.report, "the report shows how the certificate was made"
