"""gunicorn settings of a service, as a team would write them (tests/integration/
test_gunicorn_config.py runs wsgid on it unchanged).

The port, the log file and the hook record come from the environment, as in a container.
"""

import json
import multiprocessing
import os

bind = [f"127.0.0.1:{os.environ.get('MYAPP_PORT', '8000')}", "unix:myapp.sock"]

# 2 x cores + 1, gunicorn's rule of thumb, but no more than the box can take.
workers = min(multiprocessing.cpu_count() * 2 + 1, int(os.environ.get("MYAPP_MAX_WORKERS", "4")))
timeout = 30
graceful_timeout = 10
max_requests = 1000
max_requests_jitter = 50

accesslog = os.environ.get("MYAPP_ACCESSLOG", "-")
loglevel = "info"

raw_env = [
    "MYAPP_MODE=production",
    "MYAPP_GREETING=hello, world",
]


def _record(hook, server, worker):
    path = os.environ.get("MYAPP_HOOK_LOG")
    if not path:
        return
    entry = {
        "hook": hook,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "server": type(server).__name__,
        "server_pid": server.pid,
        "worker": type(worker).__name__,
        "worker_pid": worker.pid,
    }
    with open(path, "a") as log:
        log.write(json.dumps(entry) + "\n")


def post_fork(server, worker):
    _record("post_fork", server, worker)


def worker_exit(server, worker):
    _record("worker_exit", server, worker)
