"""A real Flask-Sock app: WebSocket echo over the connection it takes over.

Flask-Sock (simple-websocket) finds the connection's socket in `environ["gunicorn.socket"]`,
answers the upgrade with 101 on it, and, once the WebSocket closes, ends the request by
raising StopIteration (gunicorn's convention) without calling start_response.

- `/echo` (WebSocket): sends back every message until it receives `bye`, then closes.
- `/`: a plain HTTP answer, `plain`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_sock import Sock

app = Flask(__name__)
sock = Sock(app)


@sock.route("/echo")  # type: ignore[untyped-decorator]
def echo(ws: Any) -> None:
    while True:
        message = ws.receive()
        if message == "bye":
            return
        ws.send(message)


@app.route("/")
def index() -> str:
    return "plain"
