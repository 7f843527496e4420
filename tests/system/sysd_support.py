"""Small helpers shared by the system tests: what the machine must offer, or a clear skip."""

from __future__ import annotations

import grp
import os
import pwd
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


def need_supplementary_member() -> tuple[str, int]:
    """A user the group database lists in a group besides its primary one, and that group's
    gid; or skip. Found among the machine's own users: no account is created for a test."""
    for entry in grp.getgrall():
        for name in entry.gr_mem:
            try:
                primary = pwd.getpwnam(name).pw_gid
            except KeyError:
                continue
            if entry.gr_gid != primary:
                return name, entry.gr_gid
    pytest.skip("no user here is a member of a group besides its primary one")
