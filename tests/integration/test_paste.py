"""Paste Deploy: a Pyramid app served from an ini file, and wsgid run by pserve.

Real wsgid processes and the real PasteDeploy and pyramid packages (the test extra). The app
is tests/apps/pyramid_app.py, named in the ini files as `use = call:pyramid_app:main`, so no
distribution has to be installed for it.

- `--paste development.ini` serves the file's main app, with `--paste-global` variables,
  built in each worker, or in the master with `--preload`;
- `--paste development.ini#admin` serves the section `[app:admin]`;
- a `[loggers]` section whose file handler's path uses `%(here)s` gets the app's records,
  while wsgid's own error log keeps working (and records no handler takes still reach it),
  and `config show` names the file as the logging config's source;
- `pserve development.ini` with `[server:main] use = egg:wsgid#main` serves requests with
  the section's settings, stops on TERM and leaves nothing behind; the app pserve built is
  served as if preloaded, across a HUP too;
- an unknown key in that section is a clear error with a did-you-mean.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from support.client import poll
from support.server import WorkDir, WsgidServer

PSERVE = Path(sys.executable).parent / "pserve"

APP_SECTIONS = """\
[app:main]
use = call:pyramid_app:main
greeting = from %(who)s's ini

[app:admin]
use = call:pyramid_app:admin
"""

LOGGERS = """\
[loggers]
keys = root, quiet

[handlers]
keys = file

[formatters]
keys = plain

[logger_root]
level = INFO
handlers = file

[logger_quiet]
level = INFO
handlers =
qualname = quiet
propagate = 0

[handler_file]
class = FileHandler
args = ('%(here)s/app.log',)
formatter = plain

[formatter_plain]
format = APP %(name)s %(message)s
"""


def lines(path: Path) -> list[str]:
    try:
        return path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        return []


def events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in lines(path)]


def test_paste_serves_a_pyramid_app_with_global_variables(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    (workdir.cwd / "development.ini").write_text(APP_SECTIONS)
    server = wsgid(None, "--paste", "development.ini", "--paste-global", "who=world")
    assert server.get("/").text == "hello from world's ini (who=world)\n"
    assert server.get("/nowhere").status == 404  # Pyramid's own routing answered
    # Built in the worker, not the master: a HUP reloads it like any app.
    (worker,) = server.worker_pids()
    assert int(server.get("/built").text) == int(server.get("/pid").text) == worker


def test_paste_with_preload_builds_the_app_in_the_master(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    (workdir.cwd / "development.ini").write_text(APP_SECTIONS)
    server = wsgid(None, "--paste", "development.ini", "--paste-global", "who=x", "--preload")
    assert int(server.get("/built").text) == server.pid


def test_paste_name_selects_another_app_section(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    (workdir.cwd / "development.ini").write_text(APP_SECTIONS)
    server = wsgid(None, "--paster", "development.ini#admin")
    assert server.get("/").text == "admin app\n"
    assert server.get("/users/1").text == "admin app\n"


def test_paste_loggers_with_here_keep_wsgids_error_log(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    ini = workdir.cwd / "development.ini"
    ini.write_text(APP_SECTIONS + "\n" + LOGGERS)
    error_log = workdir.logs / "error.log"
    server = wsgid(
        None, "--paste", "development.ini", "--paste-global", "who=me",
        "--error-logfile", str(error_log), "--log-format", "json",
    )  # fmt: skip
    server.get("/log?logger=pyramid_app.views&msg=to-the-ini-file")
    poll(
        lambda: "APP pyramid_app.views to-the-ini-file" in lines(workdir.cwd / "app.log"),
        timeout=10,
        what="the record in %(here)s/app.log",
    )
    # wsgid's own error log: its events, and an exception that reached the server.
    assert server.get("/boom").status == 500
    poll(
        lambda: any("boom from the pyramid app" in json.dumps(e) for e in events(error_log)),
        timeout=10,
        what="the app's exception in wsgid's error log",
    )
    assert any(e["event"] == "master.started" for e in events(error_log))
    # A record no handler of the ini takes still reaches wsgid's error log.
    server.get("/log?logger=quiet&msg=nobody-handles-this")
    poll(
        lambda: [e for e in events(error_log) if e["event"] == "nobody-handles-this"],
        timeout=10,
        what="the unhandled record in wsgid's error log",
    )
    assert not [line for line in lines(workdir.cwd / "app.log") if "nobody-handles" in line]


def test_config_show_names_the_paste_file_as_the_logging_config(workdir: WorkDir) -> None:
    ini = workdir.cwd / "development.ini"
    ini.write_text(APP_SECTIONS + "\n" + LOGGERS)
    shown = subprocess.run(
        [sys.executable, "-m", "wsgid", "config", "show", "--json", "--paste", "development.ini"],
        cwd=workdir.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    settings = json.loads(shown.stdout)
    assert settings["paste"] == {"value": str(ini), "source": "flag:--paste"}
    assert settings["logconfig"] == {"value": str(ini), "source": f"paste:{ini} [loggers]"}


def pserve_ini(workdir: WorkDir, server_keys: str) -> Callable[[int], list[str]]:
    """The harness's `command`: writes development.ini for the port chosen, runs pserve on it."""

    def command(port: int) -> list[str]:
        ini = workdir.cwd / "development.ini"
        ini.write_text(
            APP_SECTIONS
            + "\n[server:main]\nuse = egg:wsgid#main\nhost = 127.0.0.1\n"
            + f"port = {port}\n{server_keys}"
        )
        return [str(PSERVE), str(ini), "who=pserve"]

    return command


def test_pserve_runs_wsgid_with_the_server_section(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server = wsgid(
        None, command=pserve_ini(workdir, "workers = 2\nproc_name = pyramid-site\n"), workers=2
    )
    assert server.get("/").text == "hello from pserve's ini (who=pserve)\n"
    pids = {int(server.get("/pid").text) for _ in range(20)}
    assert pids <= set(server.worker_pids()) and server.pid not in pids
    assert server.stop(signal.SIGTERM) == 0


def test_pserve_serves_the_app_it_built_as_if_preloaded_across_a_hup(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server = wsgid(None, command=pserve_ini(workdir, "workers = 2\n"), workers=2)
    assert int(server.get("/built").text) == server.pid  # pserve built it: the master
    old = set(server.worker_pids())

    def new_generation() -> bool:
        pids = set(server.worker_pids())
        return len(pids) == 2 and not pids & old

    server.send_signal(signal.SIGHUP)
    poll(new_generation, timeout=15, what="a new generation of workers after HUP")
    assert int(server.get("/built").text) == server.pid  # the same app, not built again
    assert server.stop(signal.SIGTERM) == 0


def test_pserve_unknown_server_key_is_a_clear_error(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    server = wsgid(None, command=pserve_ini(workdir, "wrokers = 2\n"), start=False)
    assert server.wait_exit(60) != 0
    ini = workdir.cwd / "development.ini"
    assert (
        f'wsgid: error: {ini}: paste [server:main]: key "wrokers" is not a wsgid setting.'
        ' Did you mean "workers"?'
    ) in server.errlog()
