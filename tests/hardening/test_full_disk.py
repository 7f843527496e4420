"""A full disk under the access log: no record is cut, none is lost unreported.

The access log file lives on a small tmpfs that a filler file has nearly filled; ~1000
requests are served (every one must still get 200) while the log's writes fail. Then:

- every line of the file is a whole JSON record (a write the disk took only part of was
  finished or taken back, never left to glue the next record onto it);
- the error log, on a normal disk, has `log.write_failed` reports, rate-limited (a few per
  worker, not one per failed write), whose `lost` counts add up, with the records in the
  file, to every request served: nothing went missing without a count;
- once the filler is deleted, new records are written whole again.

The same holds for the error log in a file: its failures are reported on stderr. Every
worker kind, two workers appending to the same file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.client import poll
from support.kinds import kind_args
from support.server import WsgidServer

APP = "misbehaving_app:app"
WORKERS = 2
LOAD = 1000
AFTER = 50
LEFT_FREE = 16 * 1024  # what the filler leaves for the access log
REPORT_INTERVAL = 10.0  # sinks.REPORT_INTERVAL


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, mounted for the test and unmounted after it."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
    try:
        yield mountpoint  # set up before the server, so unmounted after it is stopped
    finally:
        if subprocess.run(["umount", str(mountpoint)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)  # still busy


def fill(path: Path, leave: int) -> None:
    """Fill the file system of `path` with `path`, then give `leave` bytes back."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = b"\0" * 65536
        with contextlib.suppress(OSError):  # ENOSPC: full
            while os.write(fd, block):
                pass
        os.ftruncate(fd, max(os.fstat(fd).st_size - leave, 0))
    finally:
        os.close(fd)


def serve(server: WsgidServer, paths: list[str], threads: int = 4) -> list[int]:
    """GET each path over a few keep-alive connections; the statuses."""
    statuses: list[int] = []
    lock = threading.Lock()

    def client(part: list[str]) -> None:
        conn = server.connection()
        try:
            for path in part:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                with lock:
                    statuses.append(response.status)
        finally:
            conn.close()

    workers = [threading.Thread(target=client, args=(paths[i::threads],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    return statuses


def records(path: Path, status: int | None = 200) -> list[dict[str, object]]:
    """A log's records; fails on any line that is not one whole JSON record."""
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"the file ends mid-record: {data[-200:]!r}"
    parsed = []
    for number, line in enumerate(data.split(b"\n")[:-1], 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not a whole record: {line[:300]!r}") from None
        assert isinstance(record, dict), line[:300]
        assert status is None or record.get("status") == status, line[:300]
        parsed.append(record)
    return parsed


def served_by(path: Path, prefix: str) -> int:
    """Records for paths starting with `prefix`, while workers may still be appending."""
    data = path.read_bytes()
    return sum(b'"path":"' + prefix.encode() in line for line in data.split(b"\n"))


def reports(errlog: str) -> list[str]:
    return [line for line in errlog.splitlines() if "log.write_failed" in line]


def test_a_full_disk_under_the_access_log_cuts_no_record_and_counts_every_loss(
    small_disk: Path, wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    filler = small_disk / "filler"
    access = small_disk / "access.log"
    fill(filler, LEFT_FREE)
    server = wsgid(
        APP, *kind_args(kind), "--access-logfile", str(access), "--access-logformat", "json",
        workers=WORKERS,
    )  # fmt: skip
    started = time.monotonic()

    statuses = serve(server, [f"/load-{i}" for i in range(LOAD)])
    assert statuses == [200] * LOAD
    assert served_by(access, "/load-") < LOAD, "the disk never filled up: nothing was tested"
    poll(lambda: reports(server.errlog()), timeout=10, what="a log.write_failed report")
    first = reports(server.errlog())[0]
    assert "log=access" in first and f"path={access}" in first, first
    assert "No space left on device" in first, first

    filler.unlink()
    assert serve(server, [f"/after-{i}" for i in range(AFTER)]) == [200] * AFTER

    poll(
        lambda: served_by(access, "/after-") == AFTER,
        timeout=10,
        what="the records served after space was freed",
    )
    assert server.stop() == 0
    elapsed = time.monotonic() - started

    final = records(access)
    served = sum(str(r["path"]).startswith(("/load-", "/after-")) for r in final)
    lines = reports(server.errlog())
    lost = sum(int(m.group(1)) for line in lines for m in [re.search(r" lost=(\d+)", line)] if m)
    assert lost > 0, lines
    assert served + lost == LOAD + AFTER, (served, lost, lines)
    # Rate-limited: per worker, one at the first failure, one per interval, one at exit.
    assert len(lines) <= WORKERS * (3 + elapsed / REPORT_INTERVAL), lines


def test_a_full_disk_under_the_error_log_cuts_no_record_and_reports_on_stderr(
    small_disk: Path, wsgid: Callable[..., WsgidServer], kind: str
) -> None:
    filler = small_disk / "filler"
    errors = small_disk / "error.log"
    fill(filler, LEFT_FREE)
    server = wsgid(
        APP, *kind_args(kind), "--error-logfile", str(errors), "--log-format", "json",
        workers=WORKERS,
    )  # fmt: skip
    # Each failing request logs app.error with its traceback: a few hundred bytes to 2 KiB.
    assert serve(server, ["/raise"] * 200) == [500] * 200
    poll(lambda: reports(server.errlog()), timeout=10, what="a log.write_failed report")
    assert server.stop() == 0  # the disk still full: what the workers kept is counted lost

    logged = [r for r in records(errors, status=None) if r.get("event") == "app.error"]
    lines = reports(server.errlog())  # stderr: the error log cannot report on itself
    assert all('"log":"error"' in line for line in lines), lines
    lost = sum(json.loads(line)["lost"] for line in lines)
    assert 0 < len(logged) < 200 and len(logged) + lost >= 200, (len(logged), lost, lines)
    # The master's own events at the stop did not fit either: it says so as it exits.
    master = [json.loads(line) for line in lines if json.loads(line)["pid"] == server.pid]
    assert master and master[-1]["lost"] >= 1, lines


def test_a_disk_that_recovers_before_a_record_is_lost_gets_no_report_of_nothing(
    small_disk: Path, wsgid: Callable[..., WsgidServer]
) -> None:
    """Records kept while the disk is full, all written once it has room again: the reports
    say what was kept while it lasted, and none says `lost=0 kept=0` (nothing) afterwards,
    neither later nor as the worker exits."""
    filler = small_disk / "filler"
    access = small_disk / "access.log"
    fill(filler, 0)
    server = wsgid(APP, "--access-logfile", str(access), "--access-logformat", "json", workers=1)
    # One request at a time: each loop turn tries the full disk again and fails.
    assert serve(server, [f"/full-{i}" for i in range(20)], threads=1) == [200] * 20
    poll(lambda: reports(server.errlog()), timeout=10, what="a log.write_failed report")
    filler.unlink()
    assert serve(server, [f"/after-{i}" for i in range(5)], threads=1) == [200] * 5
    poll(
        lambda: served_by(access, "/full-") == 20 and served_by(access, "/after-") == 5,
        timeout=10,
        what="every record, written late",
    )
    assert server.stop() == 0
    records(access)  # whole records only
    lines = reports(server.errlog())
    counts = [
        (int(m.group(1)), int(m.group(2)))
        for line in lines
        for m in [re.search(r" lost=(\d+) kept=(\d+)", line)]
        if m
    ]
    assert len(counts) == len(lines) and counts, lines
    assert all(lost == 0 for lost, _ in counts), lines  # the disk recovered in time
    assert all(kept > 0 for _, kept in counts), lines
