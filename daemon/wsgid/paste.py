"""Paste Deploy files: what wsgid reads in them itself, and the `pserve` entry point.

What this module owns:

- `serve`, the `paste.server_runner` entry point named `main` (pyproject.toml), which makes
  `[server:main] use = egg:wsgid#main` run wsgid under `pserve` (Pyramid) or `gearbox`
  (TurboGears), serving the application they built;
- `ServerSection`, the keys of that server section as the settings loader reads them
  (`wsgid.settings.sources.read_paste_server` validates them with the same model as every
  other source);
- `has_loggers`: whether a paste file has a [loggers] section, which then configures stdlib
  logging (the settings loader sets `logconfig` from it).

Loading an application from a paste file (the `paste` setting) is `wsgid.loader`'s, as is
every other way of naming the application. This module imports only the standard library:
PasteDeploy imports it to find `serve`, and the settings loader to read the file.
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServerSection:
    """The server section of a paste file that runs wsgid, as pserve hands it to `serve`."""

    ini: str  # the paste file's absolute path
    section: str  # "[server:main]", for messages and `config show`
    conf: Mapping[str, str]  # its keys, without `use`


def read_ini(path: str) -> configparser.ConfigParser:
    """The paste file at `path`, parsed as Paste Deploy parses it (without interpolation:
    `%(here)s` is Paste Deploy's to expand). Raises OSError or configparser.Error."""
    parser = configparser.ConfigParser(interpolation=None)
    with open(path, encoding="utf-8") as fp:
        parser.read_file(fp)
    return parser


def has_loggers(path: str) -> bool:
    """Whether the paste file has a [loggers] section. Raises OSError or configparser.Error."""
    return read_ini(path).has_section("loggers")


def _section_of_wsgid(path: str) -> str:
    """The server section that names wsgid (`use = egg:wsgid#main`), for messages.

    pserve does not tell its runner which section it read; a file has one such section as a
    rule. With none or several found, the words "server section".
    """
    try:
        parser = read_ini(path)
    except (OSError, configparser.Error):
        return "server section"
    found = [
        name
        for name in parser.sections()
        if name.startswith("server:") and "wsgid" in parser.get(name, "use", fallback="")
    ]
    return f"[{found[0]}]" if len(found) == 1 else "server section"


def serve(app: Callable[..., Any], global_conf: Mapping[str, str], **local_conf: str) -> None:
    """Serve `app` with wsgid until stopped: Paste Deploy's `paste.server_runner` protocol.

    pserve calls it with the application it loaded from the paste file, the file's defaults
    (`__file__`, `here`) and the keys of the server section. The application is built before
    wsgid starts, in this process, so it is served as with `preload_app`: a HUP re-reads
    wsgid's settings and starts new workers, but does not reload the application's code
    (restart pserve for that). pserve has already applied the file's [loggers].

    A bad setting, or a server that cannot start or stops on an error, ends the process with
    wsgid's exit status, after the message on stderr. It exits at once: pserve would turn a
    SystemExit into a "clean" status 0, which tells a supervisor the wrong story.
    """
    from wsgid import cli

    given = global_conf.get("__file__")  # Paste Deploy sets it for every file it reads
    ini = os.path.abspath(given) if given else "(no paste file)"
    status = cli.serve_app(app, ServerSection(ini, _section_of_wsgid(ini), dict(local_conf)))
    if status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
