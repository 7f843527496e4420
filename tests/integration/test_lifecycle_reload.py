"""HUP reload under load: a new generation of workers, no failed request, and no way to break it.

"Under load" is `support.load.LoadLoop`: client threads sending requests continuously over
keep-alive connections and over new connections, retrying nothing.

- A reload re-reads the configuration file (here `workers` 2 -> 3) and replaces every worker.
- A configuration file that became invalid, or an app module that no longer imports, is
  logged and abandoned: the running workers keep serving, the master keeps running, and a
  later HUP with the file fixed works.
- The app is imported again by the new workers unless `preload_app` is set.
- A HUP while the first workers still boot: the master becomes ready (`master.ready`, /readyz
  200) once a generation has booted, the new one or, if the new one fails, the first.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support import procs
from support.client import get, poll
from support.load import LoadLoop, events, new_generation, wait_event
from support.server import WorkDir, WsgidServer, free_port

APP = "lifecycle_app:app"
EDITABLE = "lifecycle_edit_app"  # a module each test writes into the server's cwd


def write_config(path: Path, workers: int | str, extra: str = "") -> None:
    path.write_text(f"[workers]\nworkers = {workers}\n{extra}")


def write_app(workdir: WorkDir, version: str | None) -> None:
    """The editable app module: `make_app(version)`, or (None) a module whose import fails."""
    source = (
        f"from lifecycle_app import make_app\n\napp = make_app({version!r})\n"
        if version is not None
        else "import wsgid_test_missing_dependency  # noqa: F401\n\napp = None\n"
    )
    (workdir.cwd / f"{EDITABLE}.py").write_text(source)


def version_served(server: WsgidServer) -> str:
    resp = server.get("/pid")
    assert resp.status == 200, resp.text
    return str(resp.json()["version"])  # type: ignore[index]


def test_hup_under_load_replaces_all_workers_applies_new_count_and_fails_nothing(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    config = workdir.root / "wsgid.toml"
    write_config(config, 2)
    server = wsgid(APP, "--config", str(config))
    old = set(server.wait_workers(2))
    with LoadLoop(server.port, keepalive=3, fresh=1) as load:
        load.wait_served(100)
        write_config(config, 3)
        server.send_signal(signal.SIGHUP)
        wait_event(
            server.errlog, "reload.done", generation=2, timeout=30, check=server.check_running
        )
        new = set(poll(new_generation(server, old, 3), timeout=30, what="3 new workers only"))
        assert procs.wait_gone(sorted(old), timeout=10) == []
        # The load keeps flowing, now served by the new generation only.
        mark = time.monotonic()
        load.wait_served(100, since=mark)
    stats = load.stats
    assert not stats.failures, stats.summary() + "\n" + server.errlog()
    assert set(stats.pids(since=mark)) <= new, stats.pids(since=mark)
    assert set(stats.pids()) & old, "the load must have been served by the old workers first"
    assert events(server.errlog(), "reload.started", generation=2, workers=3)
    assert server.stop(signal.SIGTERM, timeout=30) == 0


@pytest.mark.parametrize(
    "broken",
    [
        "workers = = 3\n",  # not TOML
        "[workers]\nworkers = 0\n",  # a value the model rejects
        "[workers]\nwrokers = 3\n",  # a misspelt key
    ],
    ids=["syntax", "bad_value", "unknown_key"],
)
def test_hup_with_broken_config_keeps_serving_then_fixed_config_reloads(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, broken: str
) -> None:
    config = workdir.root / "wsgid.toml"
    write_config(config, 2)
    server = wsgid(APP, "--config", str(config))
    old = set(server.wait_workers(2))
    with LoadLoop(server.port, keepalive=2, fresh=1) as load:
        load.wait_served(50)
        config.write_text(broken)
        server.send_signal(signal.SIGHUP)
        (failed,) = wait_event(server.errlog, "reload.failed", timeout=20)
        assert str(config) in (failed.get("error") or ""), failed.line
        # Nothing changed: same master, same workers, still serving.
        mark = time.monotonic()
        load.wait_served(50, since=mark)
        server.check_running()
        assert set(server.worker_pids()) == old
        assert not events(server.errlog(), "reload.started")

        write_config(config, 3)
        server.send_signal(signal.SIGHUP)
        wait_event(server.errlog, "reload.done", timeout=30, check=server.check_running)
        new = set(poll(new_generation(server, old, 3), timeout=30, what="3 new workers only"))
        mark = time.monotonic()
        load.wait_pids(lambda pids: bool(pids) and pids <= new, since=mark)
    assert not load.stats.failures, load.stats.summary() + "\n" + server.errlog()
    assert server.stop(signal.SIGTERM, timeout=30) == 0, "the exit status must be unaffected"


def test_hup_with_app_that_no_longer_imports_keeps_serving_then_fixed_app_reloads(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    write_app(workdir, "v1")
    server = wsgid(f"{EDITABLE}:app", workers=2, env={"PYTHONDONTWRITEBYTECODE": "1"})
    old = set(server.wait_workers(2))
    assert version_served(server) == "v1"
    with LoadLoop(server.port, keepalive=2, fresh=1) as load:
        load.wait_served(50)
        write_app(workdir, None)
        server.send_signal(signal.SIGHUP)
        wait_event(server.errlog, "reload.failed", timeout=30, check=server.check_running)
        log = server.errlog()
        assert "wsgid_test_missing_dependency" in log, log
        # The old generation still serves the old code; the master is still there.
        mark = time.monotonic()
        load.wait_served(50, since=mark)
        poll(lambda: set(server.worker_pids()) == old, timeout=20, what="only the old workers")
        assert version_served(server) == "v1"

        write_app(workdir, "v2")
        server.send_signal(signal.SIGHUP)
        wait_event(server.errlog, "reload.done", timeout=30, check=server.check_running)
        new = set(poll(new_generation(server, old, 2), timeout=30, what="2 new workers only"))
        mark = time.monotonic()
        load.wait_pids(lambda pids: bool(pids) and pids <= new, since=mark)
        assert version_served(server) == "v2", "the new workers must import the app again"
    assert not load.stats.failures, load.stats.summary() + "\n" + server.errlog()
    assert server.stop(signal.SIGTERM, timeout=30) == 0, "the exit status must be unaffected"


def test_hup_with_preload_restarts_workers_without_reimporting_the_app(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    write_app(workdir, "v1")
    server = wsgid(f"{EDITABLE}:app", "--preload", workers=2, env={"PYTHONDONTWRITEBYTECODE": "1"})
    old = set(server.wait_workers(2))
    write_app(workdir, "v2")
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "reload.done", timeout=30, check=server.check_running)
    poll(new_generation(server, old, 2), timeout=30, what="2 new workers only")
    assert version_served(server) == "v1", "preload_app: a HUP keeps the master's imported app"


def test_hup_never_strands_a_lone_clients_new_connection(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """One client, one new connection at a time, across many reloads: none waits unanswered.

    A worker told to stop may be the one the kernel woke for a new connection (the listeners
    wake one worker per connection, EPOLLEXCLUSIVE). If it left that connection alone, no
    sibling would be woken for it, and it would wait in the accept queue until another
    connection came: with a lone client, until that client's own timeout.
    """
    server = wsgid(APP, "-w", "2")
    server.wait_workers(2)
    for _ in range(12):
        server.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            started = time.monotonic()
            resp = server.get("/pid", timeout=5)  # a new connection each time
            assert resp.status == 200, resp.text
            assert time.monotonic() - started < 2.0, "a new connection waited for a reload"
            time.sleep(0.01)  # a client's pace, not a wait for a condition


def held(workdir: WorkDir, hook: str, count: int) -> Callable[[], list[int]]:
    """A poll condition: the pids of the `count` workers that hooks_gate holds in `hook`."""

    def check() -> list[int]:
        pids = [int(m.name.removeprefix(f"{hook}-")) for m in workdir.markers.glob(f"{hook}-*")]
        return pids if len(pids) == count else []

    return check


@pytest.mark.parametrize("new_boots", [True, False], ids=["new_generation_boots", "it_fails"])
def test_hup_during_the_first_boot_makes_the_master_ready_once_the_reload_has_ended(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, new_boots: bool
) -> None:
    """A HUP while the first workers boot, and they boot before the HUP's: when the HUP's
    generation has booted (or failed to, and the first one serves on), the master is ready.
    The master used to stay `booting` for good: /readyz 503, no when_ready, and `reload`
    ignoring every edit (test_reload's HUP test met it when its HUP beat the second worker).

    The gates of hooks_gate order the boots: the first generation waits in post_worker_init
    (app imported), the HUP's in post_fork (reloaded configuration), each for its own file.
    One worker: with two, the reap of the HUP's second failed worker, after the reload had
    failed, would make the master ready anyway and hide a regression.
    """
    side = free_port()
    config = workdir.root / "wsgid.toml"
    config.write_text('[hooks]\npost_worker_init = "hooks_gate:post_worker_init"\n')
    server = wsgid(
        "exit_at_import_app:app", "--config", str(config), "--metrics-bind", f"127.0.0.1:{side}",
        workers=1, start=False,
    )  # fmt: skip
    (first,) = poll(held(workdir, "post_worker_init", 1), timeout=30, what="first worker held")
    if not new_boots:
        (workdir.markers / "exit-at-import").write_text("os_exit_1")  # the next imports fail
    config.write_text('[hooks]\npost_fork = "hooks_gate:post_fork"\n')
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "reload.started", generation=2, check=server.check_running)
    poll(held(workdir, "post_fork", 1), timeout=30, what="new worker held")
    (workdir.markers / "go-post_worker_init").touch()
    wait_event(server.errlog, "worker.booted", worker=first, check=server.check_running)
    (workdir.markers / "go").touch()
    ended = "reload.done" if new_boots else "reload.failed"
    wait_event(server.errlog, ended, timeout=30, check=server.check_running)
    (ready,) = wait_event(server.errlog, "master.ready", check=server.check_running)
    assert ready.get("workers") == "1", ready.line
    poll(lambda: get(side, "/readyz", timeout=5)[0] == 200, timeout=10, what="/readyz 200")
    assert (server.get("/").text == str(first)) != new_boots, "the generation that booted serves"
    assert server.stop(signal.SIGTERM, timeout=30) == 0


def test_hup_applies_the_new_raw_env_and_gives_back_the_values_it_no_longer_sets(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """As gunicorn's reload: the new configuration's raw_env reaches the new workers, and a
    key it dropped has the value from before wsgid set it again (or none)."""
    config = workdir.root / "wsgid.toml"
    config.write_text(
        'raw_env = ["TESTAPP_RAW_A=1", "TESTAPP_RAW_B=during", "TESTAPP_RAW_C=set"]\n'
        "[workers]\nworkers = 1\n"
    )
    server = wsgid(APP, "--config", str(config), env={"TESTAPP_RAW_B": "before"})

    def env(name: str) -> str | None:
        resp = server.get(f"/env?name={name}")
        assert resp.status == 200, resp.text
        return resp.json()["env"]  # type: ignore[index,no-any-return]

    assert (env("TESTAPP_RAW_A"), env("TESTAPP_RAW_B"), env("TESTAPP_RAW_C")) == (
        "1",
        "during",
        "set",
    )
    old = set(server.wait_workers(1))
    config.write_text('raw_env = ["TESTAPP_RAW_A=2"]\n[workers]\nworkers = 1\n')
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "reload.done", timeout=30, check=server.check_running)
    poll(new_generation(server, old, 1), timeout=30, what="the new worker only")
    assert (env("TESTAPP_RAW_A"), env("TESTAPP_RAW_B"), env("TESTAPP_RAW_C")) == (
        "2",
        "before",
        None,
    )
    assert server.stop(signal.SIGTERM, timeout=30) == 0


def test_hup_calls_the_on_reload_of_the_configuration_it_reads(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """gunicorn calls the reloaded file's on_reload, not the one it started with."""
    marks = workdir.root / "on_reload.txt"
    config = workdir.root / "gunicorn_conf.py"

    def write(version: str) -> None:
        config.write_text(
            "workers = 1\n\n"
            "def on_reload(server):\n"
            f"    with open({str(marks)!r}, 'a') as f:\n"
            f"        f.write({version!r} + '\\n')\n"
        )

    write("v1")
    server = wsgid(APP, "--config", str(config))
    old = set(server.wait_workers(1))
    write("v2")
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "reload.done", timeout=30, check=server.check_running)
    poll(new_generation(server, old, 1), timeout=30, what="the new worker only")
    assert marks.read_text() == "v2\n"
    assert server.stop(signal.SIGTERM, timeout=30) == 0


def test_hup_serves_the_release_a_switched_symlink_now_names(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """The deploy layout `current -> releases/N`, the server started from a shell in
    `current` (so $PWD names the link): after the link is switched to the next release, a
    HUP serves the new release's code, found through the link again (it kept the first
    release, the directory the link resolved to at start)."""
    releases = workdir.root / "releases"
    for number in (1, 2):
        (releases / str(number)).mkdir(parents=True)
        (releases / str(number) / "release_app.py").write_text(
            f"from lifecycle_app import make_app\n\napp = make_app('release {number}')\n"
        )
    current = workdir.root / "current"
    current.symlink_to(releases / "1")

    def command(port: int) -> list[str]:
        # `cd` in a shell sets $PWD to the path as given, link and all, as a deploy script's.
        return [
            "sh", "-c",
            f'cd "{current}" && exec "{sys.executable}" -m wsgid release_app:app'
            f" --bind 127.0.0.1:{port} --workers 1",
        ]  # fmt: skip

    server = wsgid(None, command=command, workers=1)
    assert version_served(server) == "release 1"
    old = set(server.worker_pids())
    switched = workdir.root / "current.next"
    switched.symlink_to(releases / "2")
    switched.replace(current)  # atomic, as `ln -sfn` then `mv -T` does it
    server.send_signal(signal.SIGHUP)
    poll(new_generation(server, old, 1), timeout=30, what="the new generation")
    assert version_served(server) == "release 2"
    assert server.stop() == 0, server.errlog()


def test_a_hup_during_a_reload_is_queued_and_applies_the_configuration_of_its_moment(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """A deploy that edits the configuration and HUPs while the last reload still boots (the
    app takes a second to import) gets its change: one more reload follows the running one
    (it was dropped, as reload.ignored, and the change never applied)."""
    config = workdir.cwd / "wsgid.toml"
    write_config(config, 1)
    server = wsgid(
        "slow_import_app:app", "-c", str(config), env={"SLOW_IMPORT_SECONDS": "1"}, workers=None
    )
    server.wait_workers(1)
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "reload.started", timeout=30)
    write_config(config, 3)
    for _ in range(3):
        server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "reload.queued", timeout=30)
    wait_event(server.errlog, "reload.done", count=2, timeout=60, check=server.check_running)
    poll(lambda: len(server.worker_pids()) == 3, timeout=30, what="three workers")
    log = server.errlog()
    assert len(events(log, "reload.queued")) == 1, log  # however many came meanwhile
    assert len(events(log, "reload.started")) == 2, log
    assert server.stop() == 0, log
