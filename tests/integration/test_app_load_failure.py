"""When the app cannot be loaded, wsgid stops quickly with exit code 4 and says why.

CONTRACT: exit code 4 = "application could not be loaded". The master must not respawn workers
in a loop: the failing test modules record every import attempt (TESTAPP_IMPORT_LOG), and the
harness also counts the worker pids it sees while waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from support.server import WorkDir, WsgidServer
from wsgid.exitcodes import ExitCode

WORKERS = 2


@dataclass(frozen=True)
class Case:
    app: str
    must_mention: tuple[str, ...]
    imports_module: bool  # whether the module's own code runs (and is counted)


CASES = {
    "module_not_found": Case(
        "wsgid_test_no_such_module:app", ("wsgid_test_no_such_module",), False
    ),
    "import_error_inside_module": Case(
        "broken_import_app:app", ("broken_import_app", "wsgid_test_missing_dependency"), True
    ),
    "attribute_missing": Case(
        "not_callable_app:missing_attr", ("not_callable_app", "missing_attr"), True
    ),
    "not_callable": Case("not_callable_app:app", ("not_callable_app", "callable"), True),
}


def run_failing(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, case: Case, *extra: str
) -> tuple[int, float, set[int], list[str], WsgidServer]:
    import_log = workdir.root / "imports.log"
    server = wsgid(
        case.app,
        "--workers",
        str(WORKERS),
        *extra,
        env={"TESTAPP_IMPORT_LOG": str(import_log)},
        start=False,
    )
    # Poll for the exit (deadline 5 s from spawn), noting every worker pid seen meanwhile.
    seen: set[int] = set()
    deadline = server.started_at + 5.0
    while server.proc is not None and server.proc.poll() is None and time.monotonic() < deadline:
        seen.update(server.worker_pids())
        time.sleep(0.01)
    rc = server.wait_exit(timeout=max(0.0, deadline - time.monotonic()) + 0.001)
    elapsed = time.monotonic() - server.started_at
    imports = import_log.read_text().splitlines() if import_log.exists() else []
    return rc, elapsed, seen, imports, server


@pytest.mark.parametrize("preload", [False, True], ids=["lazy", "preload"])
@pytest.mark.parametrize("kind", sorted(CASES))
def test_app_load_failure_exits_4_within_5s_naming_module_without_respawn_loop(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str, preload: bool
) -> None:
    case = CASES[kind]
    rc, elapsed, seen, imports, server = run_failing(
        wsgid, workdir, case, *(["--preload"] if preload else [])
    )
    log = server.errlog() + server.outlog()
    assert rc == ExitCode.APP_LOAD_FAILED, f"exit {rc}, expected {ExitCode.APP_LOAD_FAILED}\n{log}"
    assert elapsed < 5.0
    for word in case.must_mention:
        assert word in log, f"{word!r} not in the error output:\n{log}"
    # No respawn loop: at most one load attempt per worker slot, plus one in the master and a
    # margin of one round. A loop would show dozens within the 5 s.
    bound = 2 * WORKERS + 1
    assert len(seen) <= bound, f"{len(seen)} workers forked: {sorted(seen)}\n{log}"
    if case.imports_module:
        assert 1 <= len(imports) <= bound, f"module imported {len(imports)} times: {imports}"
