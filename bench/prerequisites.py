"""Installation of the prerequisites: wrk, HAProxy and openssl (apt), ``bench/.venv`` (baselines,
wsgid), the optional bjoern, and the TLS scenarios' certificate."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.layout import BENCH_DIR, HOST, REPO, REQUIREMENTS, TLS_CERT, TLS_KEY, VENV, VENV_PY, log

# A tool missing, or the bench venv, could not be installed (the smoke test skips), or the TLS
# certificate could not be made.
EXIT_PREREQUISITE = 3

# Pinned like the baselines of requirements.txt; not among them: it is optional (ensure_bjoern).
BJOERN = "bjoern==3.2.2"


class PrerequisiteError(Exception):
    """A tool (wrk, HAProxy, openssl) or the bench venv could not be installed, or the TLS
    certificate could not be made."""


def ensure_tool(name: str) -> str:
    """Return the path of ``name`` (wrk, haproxy, openssl), installing it if missing.

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
            raise PrerequisiteError(f"apt-get install {package} failed: {last_line(r)}")


def last_line(r: subprocess.CompletedProcess[str]) -> str:
    """The last line a failed command printed (stderr, else stdout), for the reason given."""
    return ((r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"])[0]


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
            return f"pip install {BJOERN} failed: {last_line(r)}"
        return None


def certificate_commands(directory: Path) -> list[list[str]]:
    """The openssl commands that make the TLS scenarios' certificate and key in ``directory``.

    Self-signed, for 127.0.0.1; ECDSA P-256, the key type of modern deployments. The key is
    PKCS#8, the only form granian reads: what ``openssl genpkey`` writes.
    """
    key, cert = str(directory / TLS_KEY), str(directory / TLS_CERT)
    return [
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", key],
        ["openssl", "req", "-x509", "-new", "-key", key, "-out", cert, "-days", "7",
         "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}"],
    ]  # fmt: skip


def make_certificate(directory: Path) -> None:
    """Make the TLS scenarios' certificate and key in ``directory`` with the openssl CLI."""
    for cmd in certificate_commands(directory):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise PrerequisiteError(f"openssl {cmd[1]} failed: {last_line(r)}")
