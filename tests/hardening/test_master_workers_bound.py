"""`workers` has an upper bound, MAX_WORKERS, enforced by the settings and by TTIN.

Without one, `workers = 100000000000000000000` was accepted and after 4,096 forks the
master's heartbeat table ran out: an IndexError killed the master and left its workers
orphaned (4,097 TTINs did the same). The bound lives in one place (wsgid.runtime); the
heartbeat table holds two full generations, which a reload runs side by side.

These tests are about the master alone (no worker kind is involved).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from support.load import wait_event
from support.server import WorkDir, WsgidServer
from wsgid.exitcodes import ExitCode
from wsgid.master import scaled
from wsgid.runtime import MAX_WORKERS, ConfigError
from wsgid.settings import load_settings
from wsgid.worker_table import HEARTBEAT_SLOTS

TOO_MANY = "100000000000000000000"
ACCEPTED = f"an integer from 1 to {MAX_WORKERS}"


@pytest.mark.parametrize("source", ["toml", "env", "web_concurrency", "flag"])
def test_a_worker_count_above_the_bound_exits_2_naming_source_key_value_and_range(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir, source: str
) -> None:
    args: list[str] = []
    env: dict[str, str] = {}
    if source == "toml":
        config = workdir.root / "wsgid.toml"
        config.write_text(f"workers = {TOO_MANY}\n")
        args, where = ["--config", str(config)], f"Config file {config}, line 1"
    elif source == "env":
        env, where = {"WSGID_WORKERS": TOO_MANY}, "Environment variable WSGID_WORKERS"
    elif source == "web_concurrency":  # the platforms' default (Heroku, Cloud Run)
        env, where = {"WEB_CONCURRENCY": TOO_MANY}, "Environment variable WEB_CONCURRENCY"
    else:
        args, where = ["-w", TOO_MANY], "Command-line flag -w"
    server = wsgid("sleep_app:app", *args, env=env, start=False)
    assert server.wait_exit(timeout=30) == ExitCode.CONFIG
    err = server.errlog()
    assert where in err and TOO_MANY in err, err
    assert f"Accepted for workers: {ACCEPTED}." in err, err


def test_the_settings_accept_exactly_up_to_the_bound() -> None:
    loaded = load_settings(["app:app", "-w", str(MAX_WORKERS)], {})
    assert loaded.settings.workers == MAX_WORKERS
    with pytest.raises(ConfigError, match=ACCEPTED):
        load_settings(["app:app", "-w", str(MAX_WORKERS + 1)], {})


def test_ttin_and_ttou_stop_at_the_bounds_and_say_why() -> None:
    assert scaled(1, +1) == (2, None)
    assert scaled(MAX_WORKERS - 1, +1) == (MAX_WORKERS, None)
    assert scaled(MAX_WORKERS, +1) == (MAX_WORKERS, f"never more than {MAX_WORKERS} workers")
    assert scaled(2, -1) == (1, None)
    assert scaled(1, -1) == (1, "never fewer than one worker")
    # A reload runs the old and the new generation side by side, both at the bound at most.
    assert HEARTBEAT_SLOTS >= 2 * MAX_WORKERS


def test_ttin_adds_a_worker_through_the_bounded_count(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid("sleep_app:app", workers=1)
    server.send_signal(signal.SIGTTIN)
    wait_event(server.errlog, "master.workers_changed", workers=2, was=1, signal="SIGTTIN")
    server.wait_workers(2)
    assert server.stop() == 0
