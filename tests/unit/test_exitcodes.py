"""The exit codes operators read in docs/running.md are exactly those of `ExitCode`."""

from __future__ import annotations

import re
from pathlib import Path

from wsgid.exitcodes import WORKER_ONLY, ExitCode

RUNNING_MD = Path(__file__).resolve().parents[2] / "docs" / "running.md"


def documented_codes() -> set[int]:
    text = RUNNING_MD.read_text(encoding="utf-8")
    table = text.split("## Exit codes", 1)[1].split("\n\n", 2)[1]
    return {int(m.group(1)) for m in re.finditer(r"^\| (\d+) \|", table, re.M)}


def test_the_exit_code_table_of_running_md_lists_every_code_an_operator_can_see() -> None:
    assert documented_codes() == {int(code) for code in ExitCode if code not in WORKER_ONLY}


def test_exit_codes_are_distinct_small_integers() -> None:
    values = [int(code) for code in ExitCode]
    assert len(set(values)) == len(values)
    assert all(0 <= value < 64 for value in values)  # below the sysexits range and 128+signal
