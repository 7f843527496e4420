"""Where the benchmark runs: its files, the loopback address, the CPU each side is pinned to.

Also its progress channel, :func:`log` (stderr), so that stdout carries the report alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent

REPO = BENCH_DIR.parent
VENV = BENCH_DIR / ".venv"
VENV_PY = VENV / "bin" / "python"
WORK = BENCH_DIR / ".work"
REQUIREMENTS = BENCH_DIR / "requirements.txt"
POST_LUA = BENCH_DIR / "post16k.lua"
TRICKLE = BENCH_DIR / "trickle.py"
# The TLS scenarios' certificate and key: file names in the run's directory, where
# prerequisites.make_certificate makes them.
TLS_CERT = "tls-cert.pem"
TLS_KEY = "tls-key.pem"

SERVER_CPU = "1"
CLIENT_CPU = "0"
HOST = "127.0.0.1"


def log(msg: str) -> None:
    """Progress goes to stderr so that stdout is the table alone."""
    print(f"[bench] {' '.join(msg.split())}", file=sys.stderr, flush=True)
