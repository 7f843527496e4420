"""Small helpers shared by the system tests: what the machine must offer, or a clear skip."""

from __future__ import annotations

import os
import shutil

import pytest

# Which Debian package brings each tool the system tests use (scripts/apt-deps.sh installs them).
PACKAGES = {
    "systemd-socket-activate": "systemd",
    "systemd-analyze": "systemd",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "curl": "curl",
}


def need_tool(name: str) -> str:
    """The path of `name`, or skip the test naming the package that provides it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        package = PACKAGES.get(name, name)
        pytest.skip(f"{name} is not installed (apt-get install {package})")
    return path


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (CI runs the tests as root)")
