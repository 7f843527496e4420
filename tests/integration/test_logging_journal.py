"""Into systemd's journal (stderr is the stream JOURNAL_STREAM names), every line wsgid writes
begins with its syslog priority, which journald takes for the entry's PRIORITY: errors are
`<3>`, so `journalctl -p err` finds them. Elsewhere the lines are unchanged."""

from __future__ import annotations

import os
import subprocess
import sys

from support.server import WorkDir, WsgidServer, free_port
from wsgid.exitcodes import ExitCode


def run_failing_start(workdir: WorkDir, journal: bool) -> list[str]:
    """A start whose app cannot be imported: info, then error records, then exit 4."""
    err = workdir.logs / f"stderr-{journal}"
    env = WsgidServer(None, workdir=workdir).environ()
    with open(err, "wb") as out:
        if journal:
            st = os.fstat(out.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        else:
            env.pop("JOURNAL_STREAM", None)
        argv = [sys.executable, "-m", "wsgid", "no_such_module_for_the_journal:app"]
        argv += ["--bind", f"127.0.0.1:{free_port()}"]
        done = subprocess.run(argv, cwd=workdir.cwd, env=env, stderr=out, timeout=60)
    assert done.returncode == ExitCode.APP_LOAD_FAILED
    return err.read_text().splitlines()


def test_records_carry_their_priority_into_the_journal(workdir: WorkDir) -> None:
    lines = run_failing_start(workdir, journal=True)
    started = [line for line in lines if "master.started" in line]
    failed = [line for line in lines if "worker.app_load_failed" in line]
    assert started and started[0].startswith("<6>"), lines
    assert failed and failed[0].startswith("<3>"), lines


def test_records_are_unchanged_elsewhere(workdir: WorkDir) -> None:
    lines = run_failing_start(workdir, journal=False)
    assert lines and not any(line.startswith("<") for line in lines), lines
