"""`wsgid config show` masks secrets unless told to show them (the real command, no server).

What must not be printed by default: raw_env values (DB_PASSWORD=...), the values of
secret-looking keys at any depth of logconfig_dict (a Sentry DSN, an API key), and the
password of a URL in any value. `--show-secrets` prints everything as it is. About the
command alone, so no worker kind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wsgid.exitcodes import ExitCode

SECRETS = ("hunter2", "s3cr3t-in-url", "abc123public", "pa55word", "k3y-value", "t0ken")
CONFIG = """\
app = "wsgid.demo:app"
raw_env = ["DB_PASSWORD=hunter2", "DATABASE_URL=postgres://app:s3cr3t-in-url@db/app", "MODE=x"]

[logging.logconfig_dict]
version = 1

[logging.logconfig_dict.handlers.sentry]
class = "logging.NullHandler"
DSN = "https://abc123public@o1.ingest.sentry.io/5"

[logging.logconfig_dict.handlers.shipper]
class = "logging.NullHandler"
url = "https://user:pa55word@logs.example.com/in"
X-Api-Key = "k3y-value"
options = { auth_token = "t0ken", retries = 3 }
"""


def config_show(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    path = tmp_path / "wsgid.toml"
    path.write_text(CONFIG, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WSGID_")}
    result = subprocess.run(
        [sys.executable, "-m", "wsgid", "config", "show", "-c", str(path), *args],
        cwd=tmp_path,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("output", [[], ["--json"]], ids=["table", "json"])
def test_config_show_masks_secrets_by_default(tmp_path: Path, output: list[str]) -> None:
    text = config_show(tmp_path, *output, env={"WSGID_RAW_ENV": "API_TOKEN=from-env-t0ken"})
    for secret in (*SECRETS, "from-env-t0ken"):
        assert secret not in text, secret
    assert "API_TOKEN=<hidden>" in text  # the names stay: the operator sees what is set


def test_config_show_json_keeps_the_shape_of_masked_values(tmp_path: Path) -> None:
    document: dict[str, Any] = json.loads(config_show(tmp_path, "--json"))
    assert document["raw_env"]["value"] == [
        "DB_PASSWORD=<hidden>", "DATABASE_URL=<hidden>", "MODE=<hidden>"
    ]  # fmt: skip
    handlers = document["logconfig_dict"]["value"]["handlers"]
    assert handlers["sentry"] == {"class": "logging.NullHandler", "DSN": "<hidden>"}
    assert handlers["shipper"] == {
        "class": "logging.NullHandler",
        "url": "https://user:<hidden>@logs.example.com/in",
        "X-Api-Key": "<hidden>",
        "options": {"auth_token": "<hidden>", "retries": 3},
    }


@pytest.mark.parametrize("output", [[], ["--json"]], ids=["table", "json"])
def test_config_show_with_show_secrets_prints_them(tmp_path: Path, output: list[str]) -> None:
    text = config_show(tmp_path, "--show-secrets", *output)
    for secret in SECRETS:
        assert secret in text, secret
    assert "<hidden>" not in text


def test_show_secrets_is_refused_outside_config_show(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WSGID_")}
    result = subprocess.run(
        [sys.executable, "-m", "wsgid", "check", "wsgid.demo:app", "--show-secrets"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == ExitCode.CONFIG
    assert "--show-secrets only applies to `wsgid config show`" in result.stderr
