"""gunicorn users switching with their configuration as it is: real wsgid processes on gunicorn's
Python config files, GUNICORN_CMD_ARGS, and `wsgid config import`.

The config files are in tests/data: gunicorn's sample configuration (its
examples/example_config.py), the one of its documentation (workers from the CPU count), and a
realistic one (computed and bounded workers, a bind list with a TCP and a UNIX socket,
accesslog, raw_env, and post_fork / worker_exit hooks defined as functions that record their
arguments). Each runs unchanged; its settings and hooks are checked on the running server.
A reload (HUP) runs the file again, for its settings and its hooks. GUNICORN_CMD_ARGS is
checked by counting worker processes, in its place among the other sources.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from support.client import poll
from support.load import events
from support.server import REPO_ROOT, WorkDir, WsgidServer, free_port, scrubbed_environ
from wsgid.exitcodes import ExitCode

DATA = REPO_ROOT / "tests" / "data"
EXAMPLE = DATA / "gunicorn_example_config.py"
DOCS = DATA / "gunicorn_docs_config.py"
REALISTIC = DATA / "gunicorn_realistic.conf.py"
APP = "lifecycle_app:app"

# The app of the realistic config: it answers with its worker's pid and what raw_env set.
MYAPP = """\
import json
import os


def app(environ, start_response):
    body = json.dumps({"pid": os.getpid(), "greeting": os.environ.get("MYAPP_GREETING")})
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]
"""


def run(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m wsgid ARGS` that does not serve (check, config ...), with the test apps'
    directory on the Python path and no inherited configuration."""
    clean = scrubbed_environ(env)
    return subprocess.run(
        [sys.executable, "-m", "wsgid", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def show(cwd: Path, *args: str) -> dict[str, Any]:
    result = run(cwd, "config", "show", "--json", *args)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def line_of(path: Path, start: str) -> int:
    """The 1-based line of `path` that starts with `start`."""
    lines = path.read_text().splitlines()
    return next(n for n, text in enumerate(lines, start=1) if text.startswith(start))


def unix_get(path: Path) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def read_hooks(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- gunicorn's sample configuration -----------------------------------------------------------


def test_gunicorn_example_config_runs_unchanged_and_its_hooks_log(
    wsgid: Callable[..., WsgidServer],
) -> None:
    # The harness's --bind flag replaces the file's 127.0.0.1:8000, as a flag does in gunicorn.
    server = wsgid(APP, "-c", str(EXAMPLE))
    (worker,) = server.wait_workers(1)
    server.wait_log("Server is ready. Spawning workers")  # when_ready(server)
    server.wait_log(f"Worker spawned (pid: {worker})")  # post_fork(server, worker)
    # server.log in a hook run by the worker logs as the worker, as gunicorn's records do
    spawned = [e for e in events(server.errlog()) if f"Worker spawned (pid: {worker})" in e.line]
    assert [e.get("pid") for e in spawned] == [str(worker)], spawned
    assert server.get("/pid").status == 200
    server.wait_log('"GET /pid HTTP/1.1" 200', stream="stdout")  # accesslog = '-', its format
    os.kill(worker, signal.SIGQUIT)  # worker_int(worker)
    server.wait_log("worker received INT or QUIT signal")
    assert "hook.failed" not in server.errlog()
    assert server.stop(signal.SIGTERM, timeout=30) == 0, server.errlog()


def test_gunicorn_docs_config_computes_workers_from_the_cpus(workdir: WorkDir) -> None:
    shown = show(workdir.cwd, "-c", str(DOCS), APP)
    assert shown["workers"]["value"] == multiprocessing.cpu_count() * 2 + 1
    assert shown["workers"]["source"] == f"file:{DOCS}, line {line_of(DOCS, 'workers =')}"
    assert shown["bind"]["value"] == ["127.0.0.1:8000"]


# --- a realistic gunicorn.conf.py --------------------------------------------------------------


def test_realistic_config_runs_unchanged_and_its_hooks_get_gunicorn_arguments(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    (workdir.cwd / "myapp.py").write_text(MYAPP)
    port = free_port()
    record = workdir.root / "hooks.jsonl"
    access = workdir.root / "access.log"
    env = {
        "MYAPP_PORT": str(port),
        "MYAPP_HOOK_LOG": str(record),
        "MYAPP_ACCESSLOG": str(access),
        "MYAPP_MAX_WORKERS": "3",
    }
    expected = min(multiprocessing.cpu_count() * 2 + 1, 3)
    server = wsgid("myapp:app", "-c", str(REALISTIC), env=env, bind_tcp=False, start=False)
    server.port = port  # the file's bind list names it, through MYAPP_PORT

    def answers() -> bool:
        server.check_running()
        try:
            return server.get("/").status == 200
        except OSError:
            return False

    poll(answers, 30, what="the TCP listener of the file's bind list")
    workers = set(server.wait_workers(expected, timeout=30))
    master = server.pid

    # bind: both listeners of the list; raw_env: in the app's environment.
    body = server.get("/").json()
    assert isinstance(body, dict) and body["greeting"] == "hello, world"
    assert b"200 OK" in unix_get(workdir.cwd / "myapp.sock")
    # accesslog: the file the config computed.
    poll(lambda: access.exists() and "GET /" in access.read_text(), 10, what="access log")

    # post_fork(server, worker): in each worker, the Master and the Worker itself.
    def all_forked() -> list[dict[str, Any]]:
        calls = read_hooks(record)
        return calls if len(calls) >= expected else []

    forks = poll(all_forked, 10, what="post_fork in every worker")
    assert {c["worker_pid"] for c in forks} == workers
    for call in forks:
        assert call["hook"] == "post_fork"
        assert call["pid"] == call["worker_pid"] and call["ppid"] == master
        assert call["server"] == "Master" and call["server_pid"] == master

    # worker_exit(server, worker): in the worker as it leaves, as under gunicorn.
    gone = min(workers)
    os.kill(gone, signal.SIGTERM)

    def exited() -> list[dict[str, Any]]:
        calls = read_hooks(record)
        return [c for c in calls if c["hook"] == "worker_exit" and c["worker_pid"] == gone]

    (call,) = poll(exited, 20, what="worker_exit")
    assert call["pid"] == gone and call["ppid"] == master
    assert call["server"] == "Master" and call["server_pid"] == master
    assert server.stop(signal.SIGTERM, timeout=30) == 0, server.errlog()
    assert "hook.failed" not in server.errlog()


RELOADED = """\
import os
workers = {workers}


def post_fork(server, worker):
    with open(os.environ["MYAPP_HOOK_LOG"], "a") as log:
        log.write('{{"hook": "post_fork", "version": {workers}, "pid": %d}}\\n' % os.getpid())
"""


def test_reload_runs_the_python_config_again_for_its_settings_and_hooks(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    conf = workdir.cwd / "gunicorn.conf.py"
    conf.write_text(RELOADED.format(workers=1))
    record = workdir.root / "hooks.jsonl"
    server = wsgid(APP, "-c", str(conf), env={"MYAPP_HOOK_LOG": str(record)})
    (old,) = server.wait_workers(1)
    conf.write_text(RELOADED.format(workers=2))
    server.send_signal(signal.SIGHUP)
    server.wait_log("reload.done", timeout=30)

    def new_generation() -> list[int]:
        pids = server.worker_pids()
        return pids if len(pids) == 2 and old not in pids else []

    new = set(poll(new_generation, 30, what="the two workers of the edited file"))

    def forked_again() -> list[dict[str, Any]]:
        calls = [c for c in read_hooks(record) if c["version"] == 2]
        return calls if len(calls) >= 2 else []

    calls = poll(forked_again, 10, what="post_fork of the edited file")
    assert {c["pid"] for c in calls} == new  # the edited file's post_fork, in the new workers
    assert [c["pid"] for c in read_hooks(record) if c["version"] == 1] == [old]
    assert server.stop(signal.SIGTERM, timeout=30) == 0, server.errlog()


def test_config_show_names_the_python_file_and_line_as_the_source(workdir: WorkDir) -> None:
    shown = show(workdir.cwd, "-c", str(REALISTIC), APP)
    for name, start in (
        ("bind", "bind ="),
        ("workers", "workers ="),
        ("accesslog", "accesslog ="),
        ("raw_env", "raw_env ="),
        ("post_fork", "def post_fork"),
        ("worker_exit", "def worker_exit"),
    ):
        assert shown[name]["source"] == f"file:{REALISTIC}, line {line_of(REALISTIC, start)}"
    assert shown["post_fork"]["value"] == f"python-config:{REALISTIC}:post_fork"
    assert shown["timeout"]["source"] == f"file:{REALISTIC}, line {line_of(REALISTIC, 'timeout')}"
    assert shown["backlog"]["source"] == "default"


def test_python_config_typo_is_a_warning_with_a_did_you_mean_and_check_passes(
    workdir: WorkDir,
) -> None:
    conf = workdir.cwd / "gunicorn.conf.py"
    conf.write_text("workers = 2\ntimout = 30\n")
    result = run(workdir.cwd, "check", "-c", str(conf), APP)
    assert result.returncode == ExitCode.OK, result.stderr
    assert f'Config file {conf}, line 2: "timout" is not a setting, and is ignored.' in (
        result.stderr
    )
    assert 'Did you mean "timeout"?' in result.stderr


def test_gunicorn_setting_wsgid_lacks_is_warned_about_and_the_file_still_runs(
    workdir: WorkDir,
) -> None:
    conf = workdir.cwd / "gunicorn.conf.py"
    conf.write_text("workers = 2\nhttp_protocols = 'h1'\n")
    result = run(workdir.cwd, "check", "-c", str(conf), APP)
    assert result.returncode == 0, result.stderr
    assert (
        f"wsgid: warning: Config file {conf}, line 2: http_protocols is a gunicorn setting"
        in result.stderr
    )


# --- wsgid config import -----------------------------------------------------------------------


def test_config_import_output_passes_wsgid_check(workdir: WorkDir) -> None:
    for source in (EXAMPLE, DOCS, REALISTIC):
        result = run(workdir.cwd, "config", "import", str(source))
        assert result.returncode == 0, result.stderr
        toml = workdir.cwd / f"{source.stem}.toml"
        toml.write_text(result.stdout)
        checked = run(workdir.cwd, "check", "-c", str(toml), APP)
        assert checked.returncode == 0, f"{source.name}:\n{result.stdout}\n{checked.stderr}"
    # The realistic file's hooks cannot be imported under its name: a note says so.
    assert "# Hook functions of gunicorn_realistic.conf.py left out: post_fork," in result.stdout


def test_config_import_hooks_of_an_importable_file_fire_from_the_toml(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    # The same file under a module's name, in the directory wsgid runs in: its hooks become
    # import strings, and the TOML alone runs them.
    (workdir.cwd / "myapp_gunicorn.py").write_text(REALISTIC.read_text())
    (workdir.cwd / "myapp.py").write_text(MYAPP)
    result = run(workdir.cwd, "config", "import", "myapp_gunicorn.py")
    assert result.returncode == 0, result.stderr
    assert 'post_fork = "myapp_gunicorn:post_fork"' in result.stdout
    toml = workdir.cwd / "wsgid.toml"
    toml.write_text(result.stdout)
    record = workdir.root / "hooks.jsonl"
    # The flags replace the bind list and worker count the file computed when converted.
    server = wsgid("myapp:app", "-c", str(toml), workers=1, env={"MYAPP_HOOK_LOG": str(record)})
    (worker,) = server.wait_workers(1)
    (call,) = poll(lambda: read_hooks(record), 10, what="post_fork")
    assert call["hook"] == "post_fork" and call["pid"] == worker and call["ppid"] == server.pid
    assert server.stop(signal.SIGTERM, timeout=30) == 0, server.errlog()
    assert [c["worker_pid"] for c in read_hooks(record) if c["hook"] == "worker_exit"] == [worker]


# --- GUNICORN_CMD_ARGS -------------------------------------------------------------------------


def steady_workers(server: WsgidServer, n: int) -> list[int]:
    """The worker pids once exactly `n` run and have booted (the count then stays)."""
    server.wait_workers(n, timeout=30)
    server.wait_log("master.ready", timeout=30)
    pids = server.worker_pids()
    assert len(pids) == n, pids
    return pids


def test_gunicorn_cmd_args_workers_3_gives_3_workers(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid(APP, env={"GUNICORN_CMD_ARGS": "--workers 3"})
    assert len(steady_workers(server, 3)) == 3


def test_wsgid_variables_and_flags_beat_gunicorn_cmd_args_which_beats_the_file(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    conf = workdir.cwd / "gunicorn.conf.py"
    conf.write_text("workers = 1\n")
    over_file = wsgid(APP, "-c", str(conf), env={"GUNICORN_CMD_ARGS": "--workers 2"})
    steady_workers(over_file, 2)
    env = {"GUNICORN_CMD_ARGS": "--workers 3", "WSGID_WORKERS": "2"}
    under_wsgid = wsgid(APP, env=env)
    steady_workers(under_wsgid, 2)
    shown = show(workdir.cwd, "-w", "1", APP)
    assert shown["workers"] == {"value": 1, "source": "flag:-w"}


def test_gunicorn_conf_py_in_the_working_directory_is_read_without_c(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    """gunicorn reads ./gunicorn.conf.py when no -c is given; so does wsgid."""
    (workdir.cwd / "gunicorn.conf.py").write_text("workers = 2\n")
    steady_workers(wsgid(APP), 2)
    shown = show(workdir.cwd, APP)
    assert shown["workers"]["source"].startswith("file:")
    assert shown["config"]["source"] == "default"


def test_gunicorn_cmd_args_error_names_the_variable(workdir: WorkDir) -> None:
    result = run(workdir.cwd, "check", APP, env={"GUNICORN_CMD_ARGS": "--workres 3"})
    assert result.returncode == ExitCode.CONFIG
    assert "Environment variable GUNICORN_CMD_ARGS: unknown flag --workres." in result.stderr


# Request hooks as gunicorn configs write them: gunicorn's example config logs the method and
# path, timing recipes keep their start on the worker, sampling recipes tag the request.
REQUEST_HOOKS = """\
import json
import os
import time

from wsgid.workers.base import Worker


def post_worker_init(worker):
    worker.served = 0


def pre_request(worker, req):
    worker.start_time = time.time()
    req.sample_id = "s-%d" % worker.served
    worker.log.info("%s %s" % (req.method, req.path))


def post_request(worker, req, environ, resp):
    worker.served += 1
    call = {
        "method": req.method, "uri": req.uri, "path": req.path, "query": req.query,
        "version": list(req.version), "headers": req.headers, "sample_id": req.sample_id,
        "elapsed": time.time() - worker.start_time, "served": worker.served,
        "is_worker": isinstance(worker, Worker), "status": resp.status,
    }
    with open(os.environ["MYAPP_HOOK_LOG"], "a") as log:
        log.write(json.dumps(call) + "\\n")
"""


def test_request_hooks_see_gunicorns_request_and_keep_what_they_set_on_worker_and_request(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    conf = workdir.cwd / "gunicorn.conf.py"
    conf.write_text(REQUEST_HOOKS)
    record = workdir.root / "hooks.jsonl"
    server = wsgid(APP, "-c", str(conf), workers=1, env={"MYAPP_HOOK_LOG": str(record)})
    for n in range(2):
        assert server.get(f"/pid/{n}?a=1", headers={"X-Tag": "t"}).status == 200
    calls = poll(lambda: len(read_hooks(record)) >= 2 and read_hooks(record), 10, what="calls")
    for n, call in enumerate(calls[-2:]):
        assert call["method"] == "GET" and call["uri"] == f"/pid/{n}?a=1", call
        assert (call["path"], call["query"], call["version"]) == (f"/pid/{n}", "a=1", [1, 1])
        assert ["X-TAG", "t"] in call["headers"], call
        assert call["is_worker"] and call["status"] == "200 OK", call
        assert call["elapsed"] >= 0 and call["sample_id"] == f"s-{call['served'] - 1}", call
    assert calls[-1]["served"] == calls[-2]["served"] + 1
    server.wait_log("GET /pid/1")  # the path as text, not b'/pid/1'
    assert server.stop(signal.SIGTERM, timeout=30) == 0, server.errlog()
    assert "hook.failed" not in server.errlog()


# What gunicorn configs do to the process beside setting names: the environment the app reads
# and the Python path its modules are found on (gunicorn runs the file in its arbiter).
SIDE_EFFECTS = """\
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.production")
os.environ["MYAPP_GREETING"] = "set by the config"
os.environ.pop("MYAPP_DROPPED", None)
sys.path.insert(0, {src!r})
workers = 1
"""

ENV_APP = """\
import json
import os


def app(environ, start_response):
    names = ("DJANGO_SETTINGS_MODULE", "MYAPP_GREETING", "MYAPP_DROPPED")
    body = json.dumps({name: os.environ.get(name) for name in names}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""


def test_the_environment_and_python_path_a_python_config_sets_reach_the_app(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    src = workdir.root / "src"  # not on the Python path but by the config
    src.mkdir()
    (src / "env_app_of_config.py").write_text(ENV_APP)
    conf = workdir.cwd / "gunicorn.conf.py"
    conf.write_text(SIDE_EFFECTS.format(src=str(src)))
    env = {"MYAPP_DROPPED": "from the shell"}
    assert (
        run(workdir.cwd, "check", "-c", str(conf), "env_app_of_config:app", env=env).returncode == 0
    )
    server = wsgid("env_app_of_config:app", "-c", str(conf), env=env)
    assert server.get("/").json() == {
        "DJANGO_SETTINGS_MODULE": "project.settings.production",
        "MYAPP_GREETING": "set by the config",
        "MYAPP_DROPPED": None,
    }
    assert server.stop(signal.SIGTERM, timeout=30) == 0, server.errlog()


# gunicorn's worker calls `worker.wsgi`: post_worker_init reads it to register things on the
# app, or wraps it.
WRAPPING_HOOK = """\
def post_worker_init(worker):
    app = worker.wsgi

    def tagged(environ, start_response):
        def start(status, headers, exc_info=None):
            return start_response(status, [*headers, ("X-Wrapped", "yes")], exc_info)

        return app(environ, start)

    worker.wsgi = tagged
"""


def test_post_worker_init_reads_and_wraps_the_app_as_worker_wsgi(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    conf = workdir.cwd / "gunicorn.conf.py"
    conf.write_text(WRAPPING_HOOK)
    server = wsgid(APP, "-c", str(conf), workers=1)
    response = server.get("/pid")
    assert response.status == 200 and response.header("X-Wrapped") == "yes", response
    assert server.stop(signal.SIGTERM, timeout=30) == 0, server.errlog()
    assert "hook.failed" not in server.errlog()


def test_a_log_file_that_cannot_be_opened_is_named_with_its_setting_file_and_line(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    conf = workdir.cwd / "gunicorn.conf.py"
    missing = workdir.root / "no-such-dir"
    conf.write_text(f'workers = 1\naccesslog = "{missing}/access.log"\n')
    where = f"accesslog, from file:{conf}, line 2"
    checked = run(workdir.cwd, "check", "-c", str(conf), APP)
    assert checked.returncode == ExitCode.CONFIG, checked.stderr
    assert f"The access log {missing}/access.log cannot be opened ({where})" in checked.stderr
    server = wsgid(APP, "-c", str(conf), start=False)
    assert server.wait_exit(30) == ExitCode.CONFIG
    assert where in server.errlog(), server.errlog()


# gunicorn's way to recycle a worker from a hook (a memory threshold, say): the hook's
# worker.alive = False reaches the worker itself, which exits after the response.
RETIRING_HOOK = """\
def post_request(worker, req, environ, resp):
    worker.alive = False
"""


def test_worker_alive_false_in_post_request_recycles_the_worker(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    conf = workdir.cwd / "gunicorn.conf.py"
    conf.write_text(RETIRING_HOOK)
    server = wsgid(APP, "-c", str(conf), workers=1)
    (first,) = server.wait_workers(1)
    assert server.get("/pid").status == 200

    def replaced() -> list[int]:
        pids = server.worker_pids()
        return pids if len(pids) == 1 and first not in pids else []

    poll(replaced, 20, what="a new worker in place of the one the hook retired")
    assert server.stop(signal.SIGTERM, timeout=30) == 0, server.errlog()
    assert "hook.failed" not in server.errlog()
