"""Server hooks that all raise: wsgid must log each failure with the hook's name and go on.

Each function raises `RuntimeError("hook <name> fails on purpose")`; the names are gunicorn's
(and wsgid's) hook names, so `--on-starting hooks_raising:on_starting` and so on.
`post_fork_interrupt` raises KeyboardInterrupt instead, to crash the worker it is called in.
"""

from __future__ import annotations

from typing import Any, NoReturn


def _fail(name: str) -> NoReturn:
    raise RuntimeError(f"hook {name} fails on purpose")


def on_starting(*args: Any) -> None:
    _fail("on_starting")


def on_reload(*args: Any) -> None:
    _fail("on_reload")


def when_ready(*args: Any) -> None:
    _fail("when_ready")


def pre_fork(*args: Any) -> None:
    _fail("pre_fork")


def post_fork(*args: Any) -> None:
    _fail("post_fork")


def post_worker_init(*args: Any) -> None:
    _fail("post_worker_init")


def worker_int(*args: Any) -> None:
    _fail("worker_int")


def worker_abort(*args: Any) -> None:
    _fail("worker_abort")


def pre_exec(*args: Any) -> None:
    _fail("pre_exec")


def pre_request(*args: Any) -> None:
    _fail("pre_request")


def post_request(*args: Any) -> None:
    _fail("post_request")


def child_exit(*args: Any) -> None:
    _fail("child_exit")


def worker_exit(*args: Any) -> None:
    _fail("worker_exit")


def nworkers_changed(*args: Any) -> None:
    _fail("nworkers_changed")


def on_exit(*args: Any) -> None:
    _fail("on_exit")


def post_fork_interrupt(*args: Any) -> None:
    """A BaseException, which no hook call catches: the worker crashes (`worker.crashed`)."""
    raise KeyboardInterrupt("post_fork interrupts on purpose")
