"""The worker and the request as a gunicorn hook sees them, in the hooks that run in a worker.

What this module owns:

- `WorkerView`, the worker handed to `post_fork`, `post_worker_init`, `worker_int`,
  `worker_abort`, `pre_request`, `post_request` and `worker_exit`. wsgid's worker classes
  are compiled (mypyc), and a compiled object takes no attribute it does not declare, while
  gunicorn's recipes keep their own state on the worker (`worker.start_time = time.time()`
  in `pre_request`, read back in `post_request`). The view reads and writes the worker's
  own attributes (`worker.alive = False` reaches it) and keeps any other one itself; one
  view per worker, so what one hook sets the next one reads. The app is also gunicorn's
  `worker.wsgi`, which a hook may replace (`worker.wsgi = Middleware(worker.wsgi)` in
  post_worker_init).
- `RequestView`, the `req` of `pre_request` and `post_request`, with gunicorn's
  `gunicorn.http.Request` attributes: `method`, `uri`, `path`, `query` and `fragment` as
  text, `version` as `(1, 1)`, `headers` as `(NAME, value)` text pairs (names upper-cased);
  wsgid's other request attributes read through (`target`, `keep_alive`, ...). What
  `pre_request` sets on it (`req.sample_id = ...`) `post_request` reads, on the same view.
- the `server` of `post_fork` and `worker_exit`, which run in the worker: the worker's copy
  of the master, given the worker's `log`, so that what the hook logs carries the worker's
  pid.
- `HookObjects`, the one per set of hooks that makes the views and adapts the hook functions
  to be called with them (`adapt`).

Both views pass `isinstance` for the object they stand for (`isinstance(worker, Worker)`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

# The worker-side hooks, and the position of the worker among their arguments.
WORKER_ARGUMENT = {
    "post_fork": 1,
    "post_worker_init": 0,
    "worker_int": 0,
    "worker_abort": 0,
    "pre_request": 0,
    "post_request": 0,
    "worker_exit": 1,
}
REQUEST_HOOKS = ("pre_request", "post_request")

# The views pre_request made, kept for the same request's post_request. A request whose
# client left during the response has no post_request: the oldest are dropped past this many
# (more than a gevent worker serves at once).
MAX_PENDING = 4096


class _View:
    """An object standing for `target`: its attributes read and written through, others kept
    on the view."""

    __slots__ = ("__dict__", "_target")

    def __init__(self, target: object) -> None:
        object.__setattr__(self, "_target", target)

    @property  # type: ignore[misc]  # isinstance(view, type(target)) holds, as for a mock
    def __class__(self) -> type:
        return type(self._target)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self._target, name):
            setattr(self._target, name, value)
        else:
            object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__:
            object.__delattr__(self, name)
        else:
            delattr(self._target, name)

    def __repr__(self) -> str:
        return repr(self._target)


class WorkerView(_View):
    """The worker as a hook sees it: its attributes, and those the hooks set; the app also as
    gunicorn's `wsgi`."""

    __slots__ = ()

    @property
    def wsgi(self) -> Any:
        return self._target.app

    @wsgi.setter
    def wsgi(self, app: Any) -> None:
        self.app = app

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name == "app":
            # The app is called through the worker's exchange, made when the worker booted,
            # before post_worker_init: a hook that wraps the app (gunicorn calls `worker.wsgi`
            # at each request) must reach it there too.
            exchange = getattr(self._target, "exchange", None)
            if exchange is not None:
                exchange.app = value


def _text(value: bytes) -> str:
    return value.decode("latin-1")


class RequestView(_View):
    """A request with gunicorn's attribute names and types."""

    __slots__ = ()

    @property
    def uri(self) -> str:
        return _text(self._target.target)

    @property
    def path(self) -> str:
        return _text(self._target.path)

    @property
    def query(self) -> str:
        return _text(self._target.query)

    @property
    def fragment(self) -> str:
        _, _, fragment = self._target.target.partition(b"#")
        return _text(fragment)

    @property
    def version(self) -> tuple[int, int]:
        text: str = self._target.version  # "HTTP/1.1"
        major, _, minor = text[5:].partition(".")
        return int(major), int(minor)

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [(_text(name).upper(), _text(value)) for name, value in self._target.headers]


class HookObjects:
    """Makes the views of one set of hooks, and the hook functions that take them."""

    def __init__(self, keep_requests: bool) -> None:
        self._worker: tuple[object, WorkerView] | None = None
        # pre_request's views, by the id of their request, for post_request; only when both
        # are set (`keep_requests`).
        self._keep_requests = keep_requests
        self._pending: dict[int, RequestView] = {}

    def adapt(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """`func`, a worker-side hook, called with the views instead of wsgid's objects."""
        at = WORKER_ARGUMENT[name]
        with_request = name in REQUEST_HOOKS

        def call(*args: Any) -> Any:
            given = list(args)
            given[at] = worker = self.worker(given[at])
            if with_request:
                given[1] = self.request(name, given[1])
            elif at == 1:
                # post_fork and worker_exit (server, worker) run in the worker, where the
                # master object is the worker's copy: its log becomes the worker's, so that
                # what the hook logs (`server.log.info("Worker spawned (pid: %s)",
                # worker.pid)`) carries the pid of the process that logged it, as gunicorn's
                # records do.
                with contextlib.suppress(AttributeError):
                    given[0].log = worker.log
            return func(*given)

        return call

    def worker(self, worker: object) -> WorkerView:
        cached = self._worker
        if cached is None or cached[0] is not worker:
            cached = self._worker = (worker, WorkerView(worker))
        return cached[1]

    def request(self, hook: str, req: object) -> RequestView:
        pending = self._pending
        if hook == "post_request":
            view = pending.pop(id(req), None)
            return view if view is not None and view._target is req else RequestView(req)
        view = RequestView(req)
        if self._keep_requests:
            if len(pending) >= MAX_PENDING:
                # (another thread of a gthread worker may change it meanwhile)
                with contextlib.suppress(RuntimeError, StopIteration, KeyError):
                    del pending[next(iter(pending))]
            pending[id(req)] = view  # the view holds the request: its id is not reused
        return view
