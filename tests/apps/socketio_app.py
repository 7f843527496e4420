"""A real Flask-SocketIO app: a Socket.IO echo over WebSocket, in the worker's async mode.

Flask-SocketIO (python-engineio) takes the connection over as it does under gunicorn: in
a gevent worker through simple-websocket (`environ["gunicorn.socket"]`), in an eventlet
worker through eventlet's own WebSocket server code (`environ["eventlet.input"]`). The mode
is the worker's library, loaded (and patched) before this module is imported.

- Socket.IO event `echo`: emitted back to the sender with the same data.
- `/`: a plain HTTP answer, `plain`.
- `/mode`: the async mode Flask-SocketIO runs in.
"""

from __future__ import annotations

import sys
from typing import Any

from flask import Flask
from flask_socketio import SocketIO, emit

app = Flask(__name__)
ASYNC_MODE = "eventlet" if "eventlet" in sys.modules else "gevent"
socketio = SocketIO(app, async_mode=ASYNC_MODE)


@socketio.on("echo")  # type: ignore[untyped-decorator]
def echo(data: Any) -> None:
    emit("echo", data)


@app.route("/")
def index() -> str:
    return "plain"


@app.route("/mode")
def mode() -> str:
    return str(socketio.async_mode)
