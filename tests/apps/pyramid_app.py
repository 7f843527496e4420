"""A real Pyramid application, built by Paste Deploy from an ini file (test_paste.py).

`main` and `admin` are Paste Deploy app factories, named in an ini file without an installed
distribution as `use = call:pyramid_app:main`. Routes of `main`:

- `/`: `hello <greeting> (who=<who>)`: `greeting` from the app section's settings, `who` from
  the global variables (the factory's global_config: `--paste-global who=...`);
- `/log?logger=NAME&msg=TEXT`: logs TEXT at WARNING on the stdlib logger NAME;
- `/pid`: the serving process's pid; `/built`: the pid of the process that built the app;
- `/boom`: raises, so the exception reaches the server (Pyramid re-raises what no exception
  view handles).

`admin` answers every path with `admin app`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response


def main(global_config: dict[str, str], **settings: str) -> Callable[..., Any]:
    built_in = os.getpid()

    def hello(request: Request) -> Response:
        who = global_config.get("who", "")
        return Response(f"hello {settings.get('greeting', '')} (who={who})\n")

    def log(request: Request) -> Response:
        logging.getLogger(request.params["logger"]).warning(request.params["msg"])
        return Response("logged\n")

    def pid(request: Request) -> Response:
        return Response(f"{os.getpid()}\n")

    def built(request: Request) -> Response:
        return Response(f"{built_in}\n")

    def boom(request: Request) -> Response:
        raise RuntimeError("boom from the pyramid app")

    config = Configurator(settings=settings)
    for name, path, view in (("hello", "/", hello), ("log", "/log", log), ("pid", "/pid", pid),
                             ("built", "/built", built), ("boom", "/boom", boom)):  # fmt: skip
        config.add_route(name, path)
        config.add_view(view, route_name=name)
    app: Callable[..., Any] = config.make_wsgi_app()
    return app


def admin(global_config: dict[str, str], **settings: str) -> Callable[..., Any]:
    def page(request: Request) -> Response:
        return Response("admin app\n")

    config = Configurator(settings=settings)
    config.add_route("any", "/*path")
    config.add_view(page, route_name="any")
    app: Callable[..., Any] = config.make_wsgi_app()
    return app
