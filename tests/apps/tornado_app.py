"""A tornado Application for `-k tornado` (tests/integration/test_tornado_worker.py), and a
WSGI app that says which thread runs it.

`app` (a `tornado.web.Application`):
- `/`: JSON {pid, thread, main, remote_ip, protocol, host}: `main` says whether the handler
  runs on the worker's main thread (the loop's, where tornado code belongs);
- `/sleep?s=N` (async): waits N seconds on the IOLoop (`asyncio.sleep`), then JSON {slept};
  with `tag=T` and `TESTAPP_MARKERS` set, it first creates `$TESTAPP_MARKERS/started-T`;
- `/gensleep?s=N` (async): the same through `tornado.gen.sleep`;
- `/wait?tag=T` (async): a long poll nobody answers: creates `$TESTAPP_MARKERS/started-T`,
  then awaits a Future (no timer) that only `on_connection_close` resolves, which first
  creates `$TESTAPP_MARKERS/closed-T` holding what `request.connection.stream.closed()`
  says then; with `stream=1` it also sets the stream's close callback, which creates
  `$TESTAPP_MARKERS/stream-closed-T`;
- `/peer`: what the request says of its connection, JSON {subject (of the client's
  certificate, `get_ssl_certificate()`), der_sha256 (of its binary form), closed
  (`connection.stream.closed()`), peer_port (`stream.socket.getpeername()`)};
- `/stream?n=N`: N chunks `chunk-I\\n`, each sent with `flush()` and a short wait on the
  IOLoop between them (no Content-Length: chunked);
- `/echo` (POST): the request body back, with its length in `X-Length`;
- `/upload` (POST, `stream_request_body`): the body as it arrives, in pieces; JSON {bytes,
  pieces, sha256};
- `/big?mb=N`: N MiB (the bytes 0..255 repeated) in 64 KiB writes, each awaited with
  `flush()` (a slow reader holds the handler, not the worker);
- `/whole?size=N`: N bytes that repeat nowhere (`whole_body`), given whole to `finish()`;
- `/ws`: a `tornado.websocket.WebSocketHandler` that echoes text messages and closes the
  WebSocket on "bye";
- `/churn`: schedules and cancels 300 timers on the loop (what cancelled `wait_for` timeouts
  do), enough for asyncio to shed them into a new timer heap; answers `churned`;
- anything else: the Application's own 404.

`wsgi`: a plain WSGI app; `/` answers JSON {thread, main}: it must run in a pool thread;
`/loop` runs a coroutine on the worker's IOLoop from the pool thread
(`asyncio.run_coroutine_threadsafe`) and answers where that ran, JSON {thread, main}.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import threading
from collections.abc import Iterable
from typing import Any

import tornado.gen
import tornado.httputil
import tornado.web
import tornado.websocket


def _where() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "main": threading.current_thread() is threading.main_thread(),
    }


class HelloHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        request = self.request
        self.write(
            {
                **_where(),
                "remote_ip": request.remote_ip,
                "protocol": request.protocol,
                "host": request.host,
                "x_forwarded_proto": request.headers.get("X-Forwarded-Proto"),
            }
        )


def _mark(name: str, text: str = "") -> None:
    """Create `$TESTAPP_MARKERS/NAME` (with `text`, else this pid), if the harness gave the
    directory."""
    markers = os.environ.get("TESTAPP_MARKERS")
    if markers:
        with open(os.path.join(markers, name), "w") as f:
            f.write(text or str(os.getpid()))


def _stream(request: tornado.httputil.HTTPServerRequest) -> Any:
    """`request.connection.stream`, which tornado's types do not declare (its server's
    `HTTP1Connection` has it; `HTTPConnection` does not say so)."""
    return getattr(request.connection, "stream")  # noqa: B009 - an attribute types lack


class WaitHandler(tornado.web.RequestHandler):
    async def get(self) -> None:
        self.tag = self.get_argument("tag", "")
        self.left: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.get_argument("stream", ""):
            tag = self.tag
            _stream(self.request).set_close_callback(lambda: _mark(f"stream-closed-{tag}"))
        _mark(f"started-{self.tag}")
        await self.left
        self.write("left")

    def on_connection_close(self) -> None:
        closed = _stream(self.request).closed()
        _mark(f"closed-{self.tag}", json.dumps({"closed": closed}))
        if not self.left.done():
            self.left.set_result(None)


class PeerHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        request = self.request
        cert: Any = request.get_ssl_certificate()
        der: Any = request.get_ssl_certificate(binary_form=True)
        stream = _stream(request)
        self.write(
            {
                "subject": dict(p for rdn in cert["subject"] for p in rdn) if cert else None,
                "der_sha256": hashlib.sha256(der).hexdigest() if der else None,
                "closed": stream.closed(),
                "peer_port": stream.socket.getpeername()[1],
            }
        )


class SleepHandler(tornado.web.RequestHandler):
    async def get(self) -> None:
        seconds = float(self.get_argument("s", "1"))
        tag = self.get_argument("tag", "")
        markers = os.environ.get("TESTAPP_MARKERS")
        if tag and markers:
            with open(os.path.join(markers, f"started-{tag}"), "w") as f:
                f.write(str(os.getpid()))
        await asyncio.sleep(seconds)
        self.write({"slept": seconds, **_where()})


class ChurnHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(300):
            loop.call_later(60, lambda: None).cancel()
        self.write("churned")


class GenSleepHandler(tornado.web.RequestHandler):
    async def get(self) -> None:
        seconds = float(self.get_argument("s", "1"))
        await tornado.gen.sleep(seconds)
        self.write({"slept": seconds, **_where()})


class StreamHandler(tornado.web.RequestHandler):
    async def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        for i in range(int(self.get_argument("n", "3"))):
            self.write(f"chunk-{i}\n")
            await self.flush()
            await asyncio.sleep(0.01)


class EchoHandler(tornado.web.RequestHandler):
    def post(self) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("X-Length", str(len(self.request.body)))
        self.write(self.request.body)


@tornado.web.stream_request_body
class UploadHandler(tornado.web.RequestHandler):
    def prepare(self) -> None:
        self.received = 0
        self.pieces = 0
        self.digest = hashlib.sha256()

    def data_received(self, chunk: bytes) -> None:
        self.received += len(chunk)
        self.pieces += 1
        self.digest.update(chunk)

    def post(self) -> None:
        self.write(
            {"bytes": self.received, "pieces": self.pieces, "sha256": self.digest.hexdigest()}
        )


CHUNK = bytes(range(256)) * 256  # 64 KiB


class BigHandler(tornado.web.RequestHandler):
    async def get(self) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        for _ in range(int(self.get_argument("mb", "1")) * 16):
            self.write(CHUNK)
            await self.flush()


def whole_body(size: int) -> bytes:
    return random.Random(size).randbytes(size)


class WholeHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(whole_body(int(self.get_argument("size"))))


class EchoWebSocket(tornado.websocket.WebSocketHandler):
    """Echoes each text message; on "bye" it closes the WebSocket."""

    def on_message(self, message: str | bytes) -> None:
        if message == "bye":
            self.close()
        else:
            self.write_message(message)


app = tornado.web.Application(
    [
        (r"/", HelloHandler),
        (r"/sleep", SleepHandler),
        (r"/gensleep", GenSleepHandler),
        (r"/wait", WaitHandler),
        (r"/peer", PeerHandler),
        (r"/churn", ChurnHandler),
        (r"/stream", StreamHandler),
        (r"/echo", EchoHandler),
        (r"/upload", UploadHandler),
        (r"/big", BigHandler),
        (r"/whole", WholeHandler),
        (r"/ws", EchoWebSocket),
    ]
)


# The worker's event loop (the tornado kind makes it before the app is imported).
LOOP = asyncio.get_event_loop_policy().get_event_loop()


async def _on_the_loop() -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return _where()


def wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/loop":
        ran = asyncio.run_coroutine_threadsafe(_on_the_loop(), LOOP).result(timeout=10)
        body = json.dumps(ran).encode()
    else:
        body = json.dumps(_where()).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
