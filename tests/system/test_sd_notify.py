"""sd_notify: the exact messages wsgid sends to NOTIFY_SOCKET, as a test-side receiver sees them.

The receiver plays systemd's part (sysd_notify.py): it records every datagram with the
sender's pid from SCM_CREDENTIALS, on a filesystem path or an abstract `@name`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from collections.abc import Callable

import pytest

from support import procs
from support.client import poll
from support.server import APPS_DIR, WsgidServer
from system.sysd_notify import NotifyReceiver

SYSTEM_APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps")

SLOW = 1.5  # seconds slow_import_app takes to import
SLOW_ENV = {"SLOW_IMPORT_SECONDS": str(SLOW)}


def fields(messages: list) -> list[dict[str, str]]:  # type: ignore[type-arg]
    """The messages' fields, with MONOTONIC_USEC (a clock reading) checked separately and the
    EXTEND_TIMEOUT_USEC keep-alives of a slow boot (checked on their own) left out."""
    return [
        {k: v for k, v in m.fields.items() if k != "MONOTONIC_USEC"}
        for m in messages
        if "EXTEND_TIMEOUT_USEC" not in m.fields
    ]


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_start_hup_term_send_ready_after_boot_reloading_ready_stopping(
    wsgid: Callable[..., WsgidServer], notify: Callable[[str], NotifyReceiver], kind: str
) -> None:
    recv = notify(kind)
    server = wsgid("slow_import_app:app", workers=2, env={**recv.env, **SLOW_ENV}, start=False)

    # start: READY=1 only once both workers have imported the (slow) app
    ready = recv.wait_key("READY", timeout=30)
    assert ready.at - server.started_at >= SLOW, "READY=1 came before the app was imported"
    t0 = time.monotonic()
    assert server.get("/").status == 200
    assert time.monotonic() - t0 < 1.0, "at READY=1 the workers must already be serving"
    assert len(server.worker_pids()) == 2
    assert fields(recv.messages()) == [
        {"STATUS": "booting 2 workers"},
        {"READY": "1", "STATUS": "serving with 2 workers: 0 busy, 2 idle"},
    ]
    # while the slow import ran, systemd's start timeout was kept ahead of it
    extends = [m for m in recv.messages() if "EXTEND_TIMEOUT_USEC" in m.fields]
    assert extends and all(m.at <= ready.at for m in extends)
    assert all(int(m["EXTEND_TIMEOUT_USEC"]) > 1_000_000 for m in extends)

    # HUP: RELOADING=1 with MONOTONIC_USEC at once, READY=1 when the new generation booted
    mark = len(recv.messages())
    before = monotonic_usec()
    server.send_signal(signal.SIGHUP)
    reloading = recv.wait_key("RELOADING", timeout=5, start=mark)
    after = monotonic_usec()
    assert before <= int(reloading["MONOTONIC_USEC"]) <= after
    again = recv.wait_key("READY", timeout=30, start=mark)
    assert again.at - reloading.at >= SLOW, "READY=1 before the new generation had booted"
    assert fields(recv.since(mark)) == [
        {"RELOADING": "1", "STATUS": "reloading"},
        {"READY": "1", "STATUS": "serving with 2 workers: 0 busy, 2 idle"},
    ]

    # TERM: STOPPING=1 at the start of the stop, then nothing more
    mark = len(recv.messages())
    assert server.stop(signal.SIGTERM) == 0
    assert fields(recv.since(mark)) == [{"STOPPING": "1", "STATUS": "stopping"}]
    assert {m.pid for m in recv.messages()} == {server.pid}, "only the master notifies"


def test_a_drain_says_stopping_once_at_its_start_then_stopping_when_the_listeners_close(
    wsgid: Callable[..., WsgidServer], notify: Callable[[str], NotifyReceiver]
) -> None:
    """With shutdown_delay, systemd hears STOPPING=1 when TERM arrives (the service is going
    away: a dependent unit may act now), with a STATUS saying it drains; when the delay is
    over and the listeners close, only the STATUS changes."""
    recv = notify("path")
    delay = 3.0
    server = wsgid("sleep_app:app", "--shutdown-delay", str(delay), workers=1, env=recv.env)
    recv.wait_key("READY", timeout=30)
    mark = len(recv.messages())
    term_at = time.monotonic()
    server.send_signal(signal.SIGTERM)
    stopping = recv.wait_key("STOPPING", timeout=5, start=mark)
    assert stopping.at - term_at < delay - 1, "STOPPING=1 waited for the delay"
    assert server.get("/pid").status == 200, "the app serves during the delay"
    assert server.wait_exit(timeout=30) == 0
    assert fields(recv.since(mark)) == [
        {"STOPPING": "1", "STATUS": "draining for 3 s before stopping (shutdown_delay)"},
        {"STATUS": "stopping"},
    ]
    last = recv.since(mark)[-1]
    assert last.at - term_at >= delay - 0.05, "the listeners closed before the delay was over"


def test_watchdog_pings_at_half_the_interval_and_stop_while_the_master_is_frozen(
    wsgid: Callable[..., WsgidServer], notify: Callable[[str], NotifyReceiver]
) -> None:
    recv = notify("abstract")
    interval = 1.0  # WATCHDOG_USEC / 2
    server = wsgid(
        "sleep_app:app", workers=1, env={**recv.env, "WATCHDOG_USEC": str(int(2 * interval * 1e6))}
    )

    def pings(start: int = 0) -> list[float]:
        return [m.at for m in recv.since(start) if m.fields.get("WATCHDOG") == "1"]

    poll(lambda: len(pings()) >= 4, timeout=10, what="4 WATCHDOG=1 pings")
    times = pings()
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]  # the first ping is at start-up
    assert all(0.7 * interval <= g <= 1.35 * interval for g in gaps), gaps
    assert {m.pid for m in recv.messages() if "WATCHDOG" in m} == {server.pid}

    # A master whose loop is stuck must stop pinging, so systemd's watchdog catches it.
    os.kill(server.pid, signal.SIGSTOP)
    try:
        frozen_at = time.monotonic()
        mark = len(recv.messages())
        time.sleep(2.5 * interval)
        assert not pings(mark), "pinged while the master was frozen"
        assert server.get("/pid").status == 200, "the workers serve on meanwhile"
    finally:
        os.kill(server.pid, signal.SIGCONT)
    resumed = recv.wait_key("WATCHDOG", timeout=3 * interval, start=mark)
    assert resumed.at - frozen_at >= 2.5 * interval


def test_watchdog_is_off_when_watchdog_pid_names_another_process(
    wsgid: Callable[..., WsgidServer], notify: Callable[[str], NotifyReceiver]
) -> None:
    recv = notify("path")
    env = {**recv.env, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}
    server = wsgid("sleep_app:app", workers=1, env=env)
    recv.wait_key("READY", timeout=10)
    time.sleep(0.5)  # more than twice the would-be ping interval
    assert not [m for m in recv.messages() if "WATCHDOG" in m]
    assert server.stop() == 0


def _new_master(recv: NotifyReceiver, old: int, start: int) -> int:
    takeover = recv.wait_for(lambda m: "MAINPID" in m, timeout=30, start=start, what="MAINPID=")
    new = int(takeover["MAINPID"])
    assert new != old and takeover.pid == new, f"MAINPID={new} sent by pid {takeover.pid}"
    assert takeover["READY"] == "1", "MAINPID= goes out with READY=1, once the workers booted"
    assert procs.read_stat(new) is not None and procs.read_stat(new).ppid == old  # type: ignore[union-attr]
    return new


def _stop_pid(pid: int, sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    assert not procs.wait_gone([pid], timeout=15), f"pid {pid} did not exit"


def test_usr2_new_master_sends_mainpid_with_ready_and_old_master_never_says_stopping(
    wsgid: Callable[..., WsgidServer], notify: Callable[[str], NotifyReceiver]
) -> None:
    recv = notify("path")
    server = wsgid("slow_import_app:app", workers=1, env={**recv.env, **SLOW_ENV})
    old = server.pid
    recv.wait_key("READY", timeout=10)
    mark = len(recv.messages())
    server.send_signal(signal.SIGUSR2)
    new = 0
    try:
        new = _new_master(recv, old, mark)
        before = recv.since(mark)
        assert next(m.at for m in before if "MAINPID" in m) - before[0].at >= SLOW * 0.9
        # The old master is retired by the operator: it must not tell systemd "stopping".
        mark = len(recv.messages())
        assert server.stop(signal.SIGTERM) == 0
        from_old = [m for m in recv.since(mark) if m.pid == old]
        assert not [m for m in from_old if "STOPPING" in m or "READY" in m], from_old
        assert server.get("/").status == 200, "the new master serves on after the old one left"
        # Adopted by systemd now, the new master names a worker then itself in MAINPID=, so
        # that systemd re-checks whether its main process is its child (graceful stop).
        dance = recv.wait_for(
            lambda m: m.pid == new and m.fields.get("MAINPID") == str(new),
            timeout=5,
            start=mark,
            what="MAINPID= again after the old master left",
        )
        stand_in = [m for m in recv.since(mark) if m.pid == new and "MAINPID" in m]
        assert len(stand_in) == 2 and stand_in[1] is dance, [str(m) for m in stand_in]
        assert int(stand_in[0]["MAINPID"]) in procs.children(new)
        # Now the new master is the service: its own stop is announced.
        mark = len(recv.messages())
        _stop_pid(new)
        new = 0
        assert [m.fields for m in recv.since(mark) if "STOPPING" in m] == [
            {"STOPPING": "1", "STATUS": "stopping"}
        ]
    finally:
        if new:
            _stop_pid(new, signal.SIGINT)


def test_usr2_roll_back_hands_mainpid_back_to_the_old_master(
    wsgid: Callable[..., WsgidServer], notify: Callable[[str], NotifyReceiver]
) -> None:
    recv = notify("abstract")
    server = wsgid("sleep_app:app", workers=1, env=recv.env)
    old = server.pid
    recv.wait_key("READY", timeout=10)
    mark = len(recv.messages())
    server.send_signal(signal.SIGUSR2)
    new = _new_master(recv, old, mark)
    mark = len(recv.messages())
    _stop_pid(new)  # roll back: the new code is bad, keep the old master
    after = recv.since(mark)
    assert not [m for m in after if "STOPPING" in m], [str(m) for m in after]
    assert [m["MAINPID"] for m in after if "MAINPID" in m] == [str(old)]
    assert server.get("/pid").status == 200
    mark = len(recv.messages())
    assert server.stop(signal.SIGTERM) == 0
    assert [m.fields for m in recv.since(mark) if "STOPPING" in m] == [
        {"STOPPING": "1", "STATUS": "stopping"}
    ]


def test_a_new_master_that_cannot_boot_never_claims_mainpid_nor_says_stopping(
    wsgid: Callable[..., WsgidServer], notify: Callable[[str], NotifyReceiver]
) -> None:
    recv = notify("path")
    flag = recv.address + ".broken"
    env = {**recv.env, "PYTHONPATH": f"{APPS_DIR}:{SYSTEM_APPS}", "BREAK_IF_EXISTS": flag}
    server = wsgid("breakable_app:app", workers=1, env=env)
    recv.wait_key("READY", timeout=10)
    with open(flag, "w"):
        pass  # from now on the app cannot be imported: the upgraded master will fail to boot
    mark = len(recv.messages())
    server.send_signal(signal.SIGUSR2)
    server.wait_log("upgrade.failed", timeout=30)
    after = recv.since(mark)
    assert not [m for m in after if "MAINPID" in m or "STOPPING" in m or "READY" in m], [
        str(m) for m in after
    ]
    assert server.get("/").status == 200, "the old master serves on"
    os.unlink(flag)
