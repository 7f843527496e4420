"""One registry of worker kinds (`wsgid.workers.KINDS`): `check` and serving agree with it.

A `worker_class` that is not a kind wsgid has (gunicorn's former `gaiohttp`, say) must fail
the same way in `wsgid check` as in `wsgid` serving: exit status 2 and the same one-line
message, naming the kinds and saying that a dotted path to a Worker subclass is accepted
too. Every kind of the registry must pass `check` and serve; `--help`
and `config schema` name exactly the registry's kinds.

Every test runs the real command: `python -m wsgid check ...` as a subprocess, and serving
through the harness's `WsgidServer` (one worker, loopback port).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from support.server import WorkDir, WsgidServer
from wsgid.exitcodes import ExitCode
from wsgid.workers import GUNICORN_CLASSES, KINDS

APP = "wsgid.demo:app"
# gunicorn's worker kinds that wsgid does not have (gunicorn 19's aiohttp worker, removed in
# gunicorn 20).
LACKING_KINDS = ("gaiohttp",)


def serve_until_exit(wsgid: Callable[..., WsgidServer], *args: str) -> tuple[int, WsgidServer]:
    """Start `wsgid APP ARGS...`, which must exit on its own; its status and the server."""
    server = wsgid(APP, *args, start=False)
    return server.wait_exit(timeout=30), server


@pytest.mark.parametrize("name", LACKING_KINDS)
def test_a_kind_wsgid_lacks_fails_check_and_serving_alike(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, name: str
) -> None:
    served, server = serve_until_exit(wsgid, "-k", name)
    checked = server.check("-k", name)

    assert served == checked.returncode == ExitCode.CONFIG, (served, checked)
    assert checked.stdout == "" and server.outlog() == ""
    assert checked.stderr == server.errlog(), "check and serving say different things"
    message = checked.stderr
    assert message.startswith(f'wsgid: error: Command-line flag -k "{name}" is not valid: ')
    assert message.count("\n") == 1, "one line"
    accepted = message.partition("Accepted for worker_class: ")[2]
    assert all(kind in accepted for kind in KINDS), message
    assert "dotted path of a Worker subclass" in accepted, message


def test_the_environment_variable_is_judged_by_the_same_registry(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    env = {"WSGID_WORKER_CLASS": "gaiohttp"}
    server = wsgid(APP, env=env, start=False)
    served = server.wait_exit(timeout=30)
    checked = server.check()  # server.environ() carries the variable

    assert served == checked.returncode == ExitCode.CONFIG
    assert checked.stderr == server.errlog()
    assert 'Environment variable WSGID_WORKER_CLASS="gaiohttp" is not valid' in checked.stderr


def test_a_worker_class_path_that_cannot_be_imported_fails_check_as_it_fails_serving(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    name = "wsgid_test_no_such_package.Worker"
    served, server = serve_until_exit(wsgid, "-k", name)
    checked = server.check("-k", name)

    assert served == checked.returncode == ExitCode.CONFIG, (served, checked)
    reason = f"worker_class {name!r} cannot be imported"
    assert reason in server.errlog(), server.errlog()
    assert checked.stderr.startswith(f"wsgid: error: {reason}"), checked.stderr


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_registered_kind_passes_check_and_serves(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, kind: str
) -> None:
    server = wsgid(APP, "-k", kind, workers=1)
    assert server.get("/").status == 200
    assert server.check("-k", kind).returncode == ExitCode.OK


@pytest.mark.parametrize(
    "name", ["gunicorn.workers.ggevent.GeventPyWSGIWorker", "gevent_pywsgi", "gevent_wsgi"]
)
def test_gunicorns_gevent_pywsgi_worker_class_serves_as_the_gevent_kind(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, name: str
) -> None:
    """gunicorn's gevent worker on gevent's pywsgi server, under each of its names: a gunicorn
    command line naming it serves with wsgid's gevent kind, and `check` accepts it."""
    server = wsgid(APP, "-k", name, workers=1)
    assert server.get("/").status == 200
    started = server.wait_log("master.started")
    assert "worker_class=gevent" in started, started
    assert server.check("-k", name).returncode == ExitCode.OK
    assert server.stop() == 0, server.errlog()


def test_help_and_schema_name_the_registered_kinds(workdir: WorkDir) -> None:
    def run(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "wsgid", *args],
            cwd=workdir.cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout

    help_text = " ".join(run("--help").split())
    start = help_text.index("--worker-class CLASS")
    entry = help_text[start : help_text.index("Env: WSGID_WORKER_CLASS", start)]
    assert all(f"`{kind}`" in entry for kind in KINDS), entry
    assert not any(name in entry for name in LACKING_KINDS), entry

    schema = json.loads(run("config", "schema"))["$defs"]["worker_class"]
    (enum,) = [branch["enum"] for branch in schema["anyOf"] if "enum" in branch]
    # The kinds, then gunicorn's spellings of them (read as the kind of the same name).
    assert enum == [*KINDS, *GUNICORN_CLASSES]
