"""Error text wsgid prints for start-up failures reads cleanly and cannot drive the terminal.

- A bind failure names the errno only when there is one: a host name that does not resolve
  says so (getaddrinfo's -2 is EAI_NONAME, not an errno), and a failure without a number
  (a unix socket path too long) prints no "(errno None ?)".
- A configuration error quotes the offending value with its control characters escaped:
  `WSGID_WORKERS=$'\\e]0;pwned\\a'` must not retitle the terminal that reads the message.

These are about the command and the master alone (nothing is served), so they take no
worker kind.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from support.server import WsgidServer
from wsgid.exitcodes import ExitCode

APP = "wsgid.demo:app"
CONTROL_BYTES = (b"\x1b", b"\x07", "\x9b".encode(), b"\r")


def _bind_failure(wsgid: Callable[..., WsgidServer], bind: str, *extra: str) -> str:
    server = wsgid(APP, "--bind", bind, *extra, start=False, bind_tcp=False)
    assert server.wait_exit(30) == ExitCode.LISTEN_FAILED, server.errlog()
    return server.errlog()


def test_a_bind_to_a_name_that_does_not_resolve_says_it_cannot_resolve_it(
    wsgid: Callable[..., WsgidServer],
) -> None:
    text = _bind_failure(wsgid, "no-such-host.invalid:8000")
    assert "cannot bind no-such-host.invalid:8000: cannot resolve no-such-host.invalid: " in text
    assert "errno" not in text and "?)" not in text


def test_a_bind_failure_without_an_errno_prints_no_errno(
    wsgid: Callable[..., WsgidServer], tmp_path: Path
) -> None:
    path = tmp_path / ("s" * 120)  # longer than sun_path: OSError without an errno
    text = _bind_failure(wsgid, f"unix:{path}")
    assert "AF_UNIX path too long" in text
    assert "errno" not in text and "None" not in text and "?)" not in text


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WSGID_")}
    clean.pop("PORT", None)
    clean.pop("WEB_CONCURRENCY", None)
    return subprocess.run(
        [sys.executable, "-m", "wsgid", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "env"),
    [
        ([], {"WSGID_WORKERS": "\x1b]0;pwned\x07"}),
        ([], {"WSGID_LOGLEVEL": "\x1b[31mred\x1b[0m"}),
        ([], {"WSGID_TIMEOUT": "1\r\x1b[2Kforged line"}),
        (["--workers", "\x9b31mred"], {}),  # C1 CSI, on a terminal that honours it
        (["--\x1b]0;pwned\x07"], {}),  # an unknown flag is quoted too
    ],
)
def test_a_configuration_error_escapes_control_characters_of_the_value(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    result = _run(["config", "show", *args], env, tmp_path)
    assert result.returncode == ExitCode.CONFIG, result.stderr
    assert result.stderr.startswith(b"wsgid: error: ")
    assert result.stderr.count(b"\n") == 1, "one paragraph"
    for byte in CONTROL_BYTES:
        assert byte not in result.stderr, result.stderr
    assert b"\\u00" in result.stderr  # escaped, not dropped: the value stays readable


def test_a_start_failure_printed_beside_a_log_file_escapes_control_characters(
    wsgid: Callable[..., WsgidServer], tmp_path: Path
) -> None:
    # With the error log in a file, the master also prints why it could not start.
    pidfile = tmp_path / "missing" / "\x1b]0;pwned\x07" / "wsgid.pid"
    server = wsgid(
        APP, "--pid", str(pidfile), "--error-logfile", str(tmp_path / "error.log"), start=False
    )
    assert server.wait_exit(30) != 0
    text = server.errlog()
    assert "\\u001b]0;pwned\\u0007" in text
    assert "\x1b" not in text and "\x07" not in text
