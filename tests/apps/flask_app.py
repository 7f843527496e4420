"""A real Flask application with the routes a web app typically has.

Exceptions propagate to the server (PROPAGATE_EXCEPTIONS), so `/boom` exercises wsgid's own
"exception before the response started -> 500 + traceback in the error log" path.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from flask import Flask, Response, jsonify, redirect, request

app = Flask(__name__)
app.config["PROPAGATE_EXCEPTIONS"] = True
app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024


@app.get("/")
def index() -> Response:
    return Response("flask ok\n", mimetype="text/plain")


@app.get("/echo")
def echo() -> Response:
    return jsonify(
        args={k: request.args.getlist(k) for k in request.args},
        path=request.path,
        raw_query=request.query_string.decode("latin-1"),
        pid=os.getpid(),
    )


@app.post("/form")
def form() -> Response:
    return jsonify(form={k: request.form.getlist(k) for k in request.form})


@app.post("/json")
def json_body() -> Response:
    return jsonify(received=request.get_json(), content_type=request.content_type)


@app.post("/upload")
def upload() -> Response:
    f = request.files["file"]
    data = f.read()
    return jsonify(
        filename=f.filename,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        note=request.form.get("note"),
    )


@app.post("/raw")
def raw() -> Response:
    """The request body as the app sees it (used for chunked request bodies)."""
    data = request.get_data()
    return jsonify(
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        transfer_encoding=request.headers.get("Transfer-Encoding", ""),
    )


@app.get("/stream")
def stream() -> Response:
    n = int(request.args.get("n", "5"))

    def generate() -> Iterator[str]:
        for i in range(n):
            yield f"chunk {i}\n"

    return Response(generate(), mimetype="text/plain")


@app.get("/stream-boom")
def stream_boom() -> Response:
    def generate() -> Iterator[str]:
        yield "first part\n"
        raise RuntimeError("flask stream-boom marker")

    return Response(generate(), mimetype="text/plain")


@app.get("/redirect")
def go_elsewhere() -> Response:
    return redirect("/echo?from=redirect", code=302)  # type: ignore[return-value]


@app.get("/boom")
def boom() -> Response:
    raise RuntimeError("flask boom marker")
