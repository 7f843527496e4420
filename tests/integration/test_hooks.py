"""Server hooks: each of the 15 is called with its documented arguments, in its process, at its
moment; and a hook that raises is logged with its name without taking anything down.

`tests/apps/hooks_recorder.py` appends one JSON line per call to $TESTAPP_HOOK_LOG (the hook,
the calling pid and its parent, a monotonic time, the argument types, and facts read from
the arguments). One server goes through the whole life that fires every hook: start,
a request, TTIN, HUP, QUIT to a worker, a hung request (timeout), USR2, TERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from support import procs
from support.client import poll
from support.load import events, stop_process, wait_event
from support.server import WorkDir, WsgidServer
from wsgid.runtime_fields import HOOK_SETTINGS

APP = "lifecycle_app:app"

# gunicorn's 15 event hooks, as the settings model declares them. Not ssl_context, which
# returns the TLS context instead of reporting an event: tests/integration/test_tls.py.
HOOKS = tuple(name for name in HOOK_SETTINGS if name != "ssl_context")
IN_MASTER = {
    "on_starting",
    "on_reload",
    "when_ready",
    "pre_fork",
    "pre_exec",
    "child_exit",
    "nworkers_changed",
    "on_exit",
}
IN_WORKER = set(HOOKS) - IN_MASTER
# The documented arguments, by type: `server` is the Master; in the master a worker is its
# WorkerProcess record; in a worker it is the Worker itself ("W": checked with isinstance).
MASTER_ARGS = {
    "on_starting": ["Master"],
    "on_reload": ["Master"],
    "when_ready": ["Master"],
    "pre_exec": ["Master"],
    "on_exit": ["Master"],
    "pre_fork": ["Master", "WorkerProcess"],
    "child_exit": ["Master", "WorkerProcess"],
    "nworkers_changed": ["Master", "int", "int"],
}
# At start, as gunicorn's arbiter: (server, workers, None).
FIRST_NWORKERS_ARGS = ["Master", "int", "NoneType"]
WORKER_ARITY = {
    "post_fork": 2,
    "post_worker_init": 1,
    "worker_int": 1,
    "worker_abort": 1,
    "pre_request": 2,
    "post_request": 4,
    "worker_exit": 2,
}

Call = dict[str, Any]


def hooks_table(module: str) -> str:
    return "[hooks]\n" + "".join(f'{name} = "{module}:{name}"\n' for name in HOOKS)


def read_calls(path: Path) -> list[Call]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def new_workers(server: WsgidServer, gone: set[int], count: int) -> Callable[[], list[int]]:
    def check() -> list[int]:
        server.check_running()
        pids = [p for p in server.worker_pids() if procs.cmdline(p).startswith("wsgid: worker")]
        return pids if len(pids) == count and not gone & set(pids) else []

    return check


def test_every_hook_is_called_with_documented_arguments_in_its_process_at_its_moment(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    record = workdir.root / "hooks.jsonl"
    config = workdir.root / "wsgid.toml"
    config.write_text("[workers]\nworkers = 2\ntimeout = 2\n\n" + hooks_table("hooks_recorder"))
    server = wsgid(APP, "--config", str(config), env={"TESTAPP_HOOK_LOG": str(record)})
    master = server.pid
    first = set(server.wait_workers(2))

    # pre_request, post_request
    assert server.get("/hooked").status == 200
    # nworkers_changed (2 -> 3), and one more pre_fork / post_fork / post_worker_init
    server.send_signal(signal.SIGTTIN)
    generation1 = set(server.wait_workers(3, timeout=20))
    # on_reload; the configuration says 2 again: nworkers_changed (3 -> 2); the old
    # generation exits: child_exit, worker_exit for each
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "reload.done", timeout=30, check=server.check_running)
    generation2 = set(poll(new_workers(server, generation1, 2), 30, what="generation 2"))
    # worker_int
    interrupted = min(generation2)
    os.kill(interrupted, signal.SIGQUIT)
    workers = set(poll(new_workers(server, {interrupted}, 2), 30, what="a replacement"))
    # worker_abort: a request that hangs past the 2 s timeout
    with ThreadPoolExecutor(max_workers=1) as pool:
        hung = pool.submit(server.get, "/stuck?tag=hook", timeout=60)
        wait_event(server.errlog, "worker.timeout_dump", timeout=30, check=server.check_running)
        hung.exception(timeout=30)
    aborted = int((workdir.markers / "started-hook").read_text())
    workers = set(poll(new_workers(server, {aborted}, 2), 30, what="a replacement"))
    # pre_exec, then stop the new master (its own hooks run in it, and are told apart by pid)
    server.send_signal(signal.SIGUSR2)
    (upgrade,) = wait_event(server.errlog, "upgrade.started", timeout=30)
    new_master = int(upgrade.get("new_master") or 0)
    wait_event(server.errlog, "master.ready", pid=new_master, timeout=30)
    stop_process(new_master, signal.SIGTERM, 30, also=procs.children(new_master))
    # on_exit
    assert server.stop(signal.SIGTERM, timeout=30) == 0, server.errlog()

    calls = read_calls(record)
    masters = {master, new_master}
    by_hook: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        by_hook[call["hook"]].append(call)
        assert "error" not in call["facts"], call
    assert set(by_hook) == set(HOOKS), f"never called: {set(HOOKS) - set(by_hook)}"

    # Where each hook runs, and with what.
    for name in IN_MASTER:
        for call in by_hook[name]:
            assert call["pid"] in masters, f"{name} ran in {call['pid']}, not a master"
            at_start = name == "nworkers_changed" and call["facts"]["old"] is None
            assert call["args"] == (FIRST_NWORKERS_ARGS if at_start else MASTER_ARGS[name]), call
        assert any(c["pid"] == master for c in by_hook[name]), name
    for name in IN_WORKER:
        for call in by_hook[name]:
            assert call["pid"] not in masters and call["ppid"] in masters, call
            assert len(call["args"]) == WORKER_ARITY[name], call
            assert call["facts"]["is_worker"] is True, call

    # When: only the old master's own calls and its workers' (not the new master's tree).
    def in_old_tree(call: Call) -> bool:
        return bool(call["pid"] == master or (call["ppid"] == master and call["pid"] != new_master))

    def ours(name: str) -> list[Call]:
        return [c for c in by_hook[name] if in_old_tree(c)]

    own = sorted((c for c in calls if in_old_tree(c)), key=lambda c: c["t"])
    assert own[0]["hook"] == "nworkers_changed", own[0]
    assert (own[0]["facts"]["new"], own[0]["facts"]["old"]) == (2, None), own[0]
    assert own[1]["hook"] == "on_starting" and own[1]["facts"]["listeners"] == 0, own[1]
    assert (own[1]["facts"]["cfg_workers"], own[1]["facts"]["num_workers"]) == (2, 2), own[1]
    last = [c for c in own if c["pid"] == master][-1]
    assert last["hook"] == "on_exit", last

    (ready,) = ours("when_ready")
    assert ready["facts"]["booted"] == [True, True], ready
    booted_first = [c for c in ours("post_worker_init") if c["pid"] in first]
    assert len(booted_first) == 2 and all(c["t"] < ready["t"] for c in booted_first)

    for post in ours("post_fork"):
        assert post["facts"]["app_loaded"] is False, "post_fork runs before the app is loaded"
        assert post["facts"]["ppid_attr"] == master and post["facts"]["cfg_timeout"] == 2, post
        pre = [c for c in ours("pre_fork") if c["facts"]["age"] == post["facts"]["age"]]
        assert len(pre) == 1 and pre[0]["t"] < post["t"], (post, pre)
        assert pre[0]["facts"]["worker_pid"] == 0, "pre_fork runs before the fork"
        init = [c for c in ours("post_worker_init") if c["pid"] == post["pid"]]
        assert len(init) == 1 and init[0]["t"] > post["t"], (post, init)
        assert init[0]["facts"]["app_loaded"] is True
    assert {c["pid"] for c in ours("post_fork")} >= first | generation1 | generation2

    (pre_req,) = [c for c in ours("pre_request") if c["facts"]["path"] == "/hooked"]
    (post_req,) = [c for c in ours("post_request") if c["facts"]["path"] == "/hooked"]
    assert pre_req["pid"] == post_req["pid"] and pre_req["t"] < post_req["t"]
    assert pre_req["facts"]["method"] == "GET"
    assert post_req["facts"]["status"] == 200 and post_req["facts"]["path_info"] == "/hooked"
    assert post_req["args"][2] == "dict", "post_request gets the environ"

    (reload_call,) = ours("on_reload")
    assert reload_call["facts"]["generation"] == 1, "on_reload runs before the new generation"
    forked_after = [c for c in ours("pre_fork") if c["t"] > reload_call["t"]]
    assert len(forked_after) >= 2, "the new generation is forked after on_reload"

    changes = [(c["facts"]["new"], c["facts"]["old"]) for c in ours("nworkers_changed")]
    assert changes[:2] == [(2, None), (3, 2)], f"start, then TTIN: {changes}"

    for pid in generation1 | {interrupted, aborted}:
        (child,) = [c for c in ours("child_exit") if c["facts"]["worker_pid"] == pid]
        assert child["facts"]["running"] is False, "child_exit runs after the worker is reaped"
        exited = [c for c in ours("worker_exit") if c["pid"] == pid]
        if pid == aborted:
            assert exited == [], "an aborted worker's app is stuck: no worker_exit"
            continue
        # In the worker as it leaves (gunicorn's place for a flush), before the master reaps it.
        (call,) = exited
        assert call["facts"]["worker_pid"] == pid and call["facts"]["server_pid"] == master
        assert call["t"] <= child["t"], "worker_exit runs before child_exit"

    (interrupt,) = ours("worker_int")
    assert interrupt["pid"] == interrupted
    (abort,) = ours("worker_abort")
    assert abort["pid"] == aborted and abort["facts"]["path"] == "/stuck", abort

    (exec_call,) = ours("pre_exec")
    new_start = [c for c in by_hook["on_starting"] if c["pid"] == new_master]
    assert new_start and exec_call["t"] < new_start[0]["t"], "pre_exec runs before the exec"
    assert workers  # the replacement workers served until the stop


def test_hooks_that_raise_are_logged_by_name_and_the_server_carries_on(
    wsgid: Callable[..., WsgidServer],
) -> None:
    flags = [
        arg for name in HOOKS for arg in (f"--{name.replace('_', '-')}", f"hooks_raising:{name}")
    ]
    server = wsgid(APP, *flags, workers=2)
    first = set(server.wait_workers(2))
    for _ in range(3):
        assert server.get("/pid").status == 200
    server.send_signal(signal.SIGTTIN)
    generation1 = set(server.wait_workers(3, timeout=20))
    assert first < generation1
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "reload.done", timeout=30, check=server.check_running)
    # The reload goes back to the configured 2 workers (as gunicorn does).
    generation2 = set(poll(new_workers(server, generation1, 2), 30, what="generation 2"))
    victim = min(generation2)
    os.kill(victim, signal.SIGQUIT)
    poll(new_workers(server, {victim}, 2), 30, what="a replacement")
    assert server.get("/pid").status == 200
    server.check_running()
    assert server.stop(signal.SIGTERM, timeout=30) == 0, server.errlog()

    log = server.errlog()
    fired = set(HOOKS) - {"worker_abort", "pre_exec"}  # no hung request, no upgrade here
    for name in sorted(fired):
        failed = events(log, "hook.failed", hook=name)
        assert failed, f"no hook.failed event for {name}\n{log}"
        assert f"hook {name} fails on purpose" in failed[0].text, failed[0].text


def test_nworkers_changed_is_called_when_a_reload_changes_the_worker_count(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """`nworkers_changed` fires at start (old_value None, as in gunicorn) and whenever the count
    changes: TTIN/TTOU, and a HUP to a new count."""
    record = workdir.root / "hooks.jsonl"
    config = workdir.root / "wsgid.toml"
    hook = '[hooks]\nnworkers_changed = "hooks_recorder:nworkers_changed"\n'
    config.write_text("[workers]\nworkers = 2\n\n" + hook)
    server = wsgid(APP, "--config", str(config), env={"TESTAPP_HOOK_LOG": str(record)})
    old = set(server.wait_workers(2))
    config.write_text("[workers]\nworkers = 3\n\n" + hook)
    server.send_signal(signal.SIGHUP)
    wait_event(server.errlog, "reload.done", timeout=30, check=server.check_running)
    poll(new_workers(server, old, 3), 30, what="3 new workers")
    server.send_signal(signal.SIGTTOU)
    server.wait_workers(2, timeout=20)
    poll(lambda: len(read_calls(record)) >= 3, timeout=10, what="the nworkers_changed calls")
    changes = [(c["facts"]["new"], c["facts"]["old"]) for c in read_calls(record)]
    assert changes == [(2, None), (3, 2), (2, 3)], f"start, HUP 2 -> 3, then TTOU: {changes}"


def test_hooks_and_logging_classes_are_imported_from_chdir_by_the_wsgid_command(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """Started as the `wsgid` console script, sys.path[0] is its bin directory, not the
    project: the master finds a hook import string and a logconfig_dict filter class where
    the workers find the app, in `chdir` (gunicorn's master runs there)."""
    script = Path(sys.executable).with_name("wsgid")
    assert script.exists(), f"{script}: the console script is installed with the package"
    project = workdir.root / "project"
    (project / "deploy").mkdir(parents=True)
    (project / "deploy" / "__init__.py").write_text("")
    marks = workdir.root / "marks.txt"
    (project / "deploy" / "hooks.py").write_text(
        f"def on_starting(server):\n    open({str(marks)!r}, 'a').write('hook\\n')\n"
    )
    (project / "deploy" / "filters.py").write_text(
        "import logging\n\n"
        "class Quiet(logging.Filter):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        f"        open({str(marks)!r}, 'a').write('filter\\n')\n"
    )
    (project / "project_app.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '2')])\n"
        "    return [b'ok']\n"
    )
    config = workdir.root / "wsgid.toml"
    config.write_text(
        '[hooks]\non_starting = "deploy.hooks:on_starting"\n\n'
        "[logconfig_dict]\nversion = 1\n"
        '[logconfig_dict.filters.quiet]\n"()" = "deploy.filters.Quiet"\n'
    )

    def command(port: int) -> list[str]:
        return [str(script), "project_app:app", "-b", f"127.0.0.1:{port}", "-c", str(config),
                "--chdir", str(project)]  # fmt: skip

    server = wsgid(None, command=command)
    assert server.get("/").body == b"ok"
    assert sorted(marks.read_text().split()) == ["filter", "hook"]
    assert server.stop() == 0


def test_a_worker_crashed_by_a_hook_is_logged_under_the_workers_own_pid(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """A BaseException from post_fork ends the worker (`worker.crashed`, with the traceback):
    the event is the worker's, so it names the worker's pid, not the master's."""
    server = wsgid(APP, "--post-fork", "hooks_raising:post_fork_interrupt", workers=1, start=False)
    assert server.wait_exit(30) != 0  # the first worker could not boot: the master stops
    log = server.errlog()
    (crashed,) = events(log, "worker.crashed")
    assert "post_fork interrupts on purpose" in crashed.text, crashed.text
    (failed,) = events(log, "worker.boot_failed")
    assert crashed.get("pid") == failed.get("worker") != str(server.pid), log


def test_a_worker_hook_that_raises_is_logged_under_the_workers_own_pid(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """hook.failed from a hook that runs in a worker (post_worker_init, pre_request) names the
    worker's pid: the master's pid there sends a reader to the wrong process."""
    server = wsgid(
        APP,
        "--post-worker-init",
        "hooks_raising:post_worker_init",
        "--pre-request",
        "hooks_raising:pre_request",
        workers=1,
    )
    (worker,) = server.wait_workers(1)
    assert server.get("/pid").status == 200
    for name in ("post_worker_init", "pre_request"):
        failed = wait_event(server.errlog, "hook.failed", hook=name, timeout=10)[-1]
        assert failed.get("pid") == str(worker) != str(server.pid), failed.text
    assert server.stop(signal.SIGTERM, timeout=30) == 0, server.errlog()
