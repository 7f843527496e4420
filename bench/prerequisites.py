"""Installation of the prerequisites: wrk and HAProxy (apt), ``bench/.venv`` (baselines, wsgid),
and the optional bjoern."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.layout import BENCH_DIR, REPO, REQUIREMENTS, VENV, VENV_PY, log

# A tool missing, or the bench venv, could not be installed (the smoke test skips).
EXIT_PREREQUISITE = 3

# Pinned like the baselines of requirements.txt; not among them: it is optional (ensure_bjoern).
BJOERN = "bjoern==3.2.2"


class PrerequisiteError(Exception):
    """A tool (wrk, HAProxy) or the bench venv could not be installed."""


def ensure_tool(name: str) -> str:
    """Return the path of ``name`` (wrk, haproxy), installing it if missing.

    The Debian package of that name, with apt-get (apt-get update only if needed).
    """
    found = shutil.which(name)
    if found:
        return found
    apt_install(name)
    found = shutil.which(name)
    if not found:
        raise PrerequisiteError(f"{name} not found on PATH after apt-get install")
    return found


def apt_install(package: str) -> None:
    """Install the Debian package ``package`` (apt-get update only if the first try fails)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PrerequisiteError(
            f"{package} is not installed and apt-get cannot be used (not root?)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", package]
    log(f"installing {package} with apt-get")
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        log("apt-get update")
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        r = subprocess.run(install, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
            raise PrerequisiteError(f"apt-get install {package} failed: {tail[0]}")


def ensure_venv() -> None:
    """Create/refresh bench/.venv with the pinned baselines and wsgid from the repo.

    wsgid is installed as a copy (not editable), with its per-request modules compiled into
    the venv (setup.py): an editable install would compile them in place, rewriting files
    that running processes of the checkout (a test session) have mapped. The copy is redone
    whenever a source of the package changed, so the bench measures the working tree.
    """
    digest = hashlib.sha256()
    sources = sorted((REPO / "daemon" / "wsgid").rglob("*.py"))
    for f in (REQUIREMENTS, REPO / "pyproject.toml", REPO / "setup.py", *sources):
        digest.update(f.read_bytes())
    want = digest.hexdigest()
    stamp = VENV / ".bench-stamp"
    with open(BENCH_DIR / ".venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent bench runs install once
        if VENV_PY.exists() and stamp.exists() and stamp.read_text() == want:
            return
        log(f"installing the baselines and wsgid into {VENV.relative_to(REPO)}")
        if not VENV_PY.exists():
            made = subprocess.run(
                [sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True
            )
            if made.returncode != 0:
                raise PrerequisiteError(f"python -m venv failed: {made.stderr[-300:]}")
        pip = [str(VENV_PY), "-m", "pip", "-q", "--disable-pip-version-check"]
        # The same version from a changed tree would count as installed already.
        subprocess.run([*pip, "uninstall", "-y", "wsgid"], capture_output=True, text=True)
        r = subprocess.run(
            [*pip, "install", "-r", str(REQUIREMENTS), str(REPO)], capture_output=True, text=True
        )
        if r.returncode != 0:
            raise PrerequisiteError(f"pip install into bench/.venv failed: {r.stderr[-500:]}")
        stamp.write_text(want)


def ensure_bjoern() -> str | None:
    """Install bjoern into bench/.venv if it is not there; None, or why it could not be.

    bjoern (a WSGI server in C on libev, one process, one thread) is the reference for what a
    request costs without Python in the server: its row is optional, so that a machine where
    its C extension cannot be built still gets the rest of the report (the row says why).
    Building it needs libev's headers (Debian's libev-dev), installed with apt-get if missing.
    """
    with open(BENCH_DIR / ".venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent bench runs install once
        check = [str(VENV_PY), "-c", "import bjoern"]
        if subprocess.run(check, capture_output=True).returncode == 0:
            return None
        try:
            if not Path("/usr/include/ev.h").exists():
                apt_install("libev-dev")
        except PrerequisiteError as e:
            return str(e)
        log(f"installing {BJOERN} into {VENV.relative_to(REPO)}")
        pip = [str(VENV_PY), "-m", "pip", "-q", "--disable-pip-version-check", "install", BJOERN]
        r = subprocess.run(pip, capture_output=True, text=True)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
            return f"pip install {BJOERN} failed: {tail[0]}"
        return None
