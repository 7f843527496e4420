"""`user`, `group`, `initgroups` and `umask`: the master keeps root for ports below 1024, workers
drop it."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from support.server import WorkDir, WsgidServer
from system.sysd_support import need_root, need_supplementary_member
from wsgid.exitcodes import ExitCode

SYSTEM_APPS = Path(__file__).resolve().parent / "apps"


def free_low_port() -> int:
    """A free TCP port below 1024 on 127.0.0.1 (only root can bind it)."""
    for port in range(1023, 900, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024 on 127.0.0.1")


def ids(pid: int) -> dict[str, list[int]]:
    """Uid/Gid/Groups lines of /proc/<pid>/status."""
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                found[key] = [int(v) for v in value.split()]
    return found


@pytest.mark.parametrize("how", ["names-in-config-file", "numeric-ids-as-flags"])
def test_root_master_binds_a_low_port_and_workers_run_as_nobody(
    wsgid: Callable[..., WsgidServer],
    workdir: WorkDir,
    readable_by_all: Callable[..., Path],
    how: str,
) -> None:
    need_root()
    nobody = pwd.getpwnam("nobody")
    low = free_low_port()
    args = ["--workers", "2"]
    if how == "names-in-config-file":
        config = workdir.root / "app.toml"
        group = grp.getgrgid(nobody.pw_gid).gr_name
        config.write_text(f'user = "nobody"\ngroup = "{group}"\n')
        args += ["--config", str(config)]
    else:
        args += ["--user", str(nobody.pw_uid), "--group", str(nobody.pw_gid)]

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "wsgid", "breakable_app:app", "-b", f"127.0.0.1:{low}", *args]

    # The workers import the app as nobody: from a copy nobody can read.
    apps = readable_by_all(SYSTEM_APPS / "breakable_app.py")
    server = wsgid(None, command=command, env={"PYTHONPATH": str(apps)}, start=False)
    server.port = low  # the harness picked a port of its own; this one is below 1024
    server.wait_ready()
    workers = server.wait_workers(2)

    assert ids(server.pid)["Uid"] == [0, 0, 0, 0], "the master keeps its identity"
    for pid in workers:
        status = ids(pid)
        assert status["Uid"] == [nobody.pw_uid] * 4, status
        assert status["Gid"] == [nobody.pw_gid] * 4, status
        assert 0 not in status["Groups"], "root's supplementary groups must be dropped"
    answer = json.loads(server.get("/").body)
    assert (answer["uid"], answer["gid"]) == (nobody.pw_uid, nobody.pw_gid)
    assert answer["pid"] in workers
    assert server.stop() == 0


@pytest.mark.parametrize("initgroups", [True, False], ids=["initgroups", "primary-group-only"])
def test_initgroups_gives_workers_every_group_of_the_user_and_only_with_it(
    wsgid: Callable[..., WsgidServer], readable_by_all: Callable[..., Path], initgroups: bool
) -> None:
    need_root()
    user, extra = need_supplementary_member()
    entry = pwd.getpwnam(user)
    apps = readable_by_all(SYSTEM_APPS / "breakable_app.py")
    args = ["--user", user, *(["--initgroups"] if initgroups else [])]
    server = wsgid("breakable_app:app", *args, env={"PYTHONPATH": str(apps)}, workers=1)
    answer = json.loads(server.get("/").body)
    assert (answer["uid"], answer["gid"]) == (entry.pw_uid, entry.pw_gid)
    if initgroups:
        assert entry.pw_gid in answer["groups"] and extra in answer["groups"], answer
    else:
        assert answer["groups"] == [entry.pw_gid], "the primary group only"
    assert 0 not in answer["groups"], "root's supplementary groups must be dropped"
    assert server.stop() == 0


def test_an_unknown_user_is_exit_2_naming_the_setting_value_and_file(
    wsgid: Callable[..., WsgidServer], workdir: WorkDir
) -> None:
    config = workdir.root / "app.toml"
    config.write_text('user = "no-such-user-wsgid"\n')
    server = wsgid("sleep_app:app", "--config", str(config), start=False)
    assert server.wait_exit(timeout=30) == ExitCode.CONFIG
    err = server.errlog()
    assert "user = 'no-such-user-wsgid'" in err and str(config) in err, err
    assert "no such user" in err


def test_an_unknown_group_is_exit_2_naming_the_flag(
    wsgid: Callable[..., WsgidServer],
) -> None:
    server = wsgid("sleep_app:app", "--group", "no-such-group-wsgid", start=False)
    assert server.wait_exit(timeout=30) == ExitCode.CONFIG
    err = server.errlog()
    assert "group = 'no-such-group-wsgid'" in err and "--group" in err, err


def test_an_explicit_umask_applies_to_the_unix_socket_file(
    wsgid: Callable[..., WsgidServer], sockdir: Path
) -> None:
    path = sockdir / "app.sock"
    server = wsgid("sleep_app:app", "--bind", f"unix:{path}", "--umask", "027")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o750
    assert server.stop() == 0


def test_a_unix_socket_file_is_bound_under_umask_and_belongs_to_the_workers_user(
    wsgid: Callable[..., WsgidServer], sockdir: Path, readable_by_all: Callable[..., Path]
) -> None:
    """As gunicorn makes it (its sock.py): mode 0777 under the default umask 0, owned by
    `user`/`group`, so that nginx, running as yet another user, can connect."""
    need_root()
    nobody = pwd.getpwnam("nobody")
    try:
        client = pwd.getpwnam("daemon")
    except KeyError:
        pytest.skip("no 'daemon' user to connect as")
    sockdir.chmod(0o755)
    path = sockdir / "app.sock"
    apps = readable_by_all(SYSTEM_APPS / "breakable_app.py")
    args = ["--bind", f"unix:{path}", "--user", "nobody", "--group", str(nobody.pw_gid)]
    server = wsgid("breakable_app:app", *args, env={"PYTHONPATH": str(apps)}, workers=1)
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o777
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    answer = subprocess.run(
        ["curl", "-sS", "--unix-socket", str(path), "http://localhost/"],
        user=client.pw_uid,
        group=client.pw_gid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["uid"] == nobody.pw_uid
    assert server.stop() == 0


def test_the_umask_setting_leaves_the_umask_of_the_app_alone(
    wsgid: Callable[..., WsgidServer],
) -> None:
    """gunicorn applies `umask` to the socket files it binds, never to the processes: with its
    example config's `umask = 0`, the app's files must not become world-writable."""
    previous = os.umask(0o077)  # the server inherits it, as from systemd's UMask=
    try:
        server = wsgid(
            "breakable_app:app",
            "--umask",
            "0",
            env={"PYTHONPATH": str(SYSTEM_APPS)},
            workers=1,
        )
    finally:
        os.umask(previous)
    assert json.loads(server.get("/").body)["umask"] == 0o077
    assert server.stop() == 0


def test_user_and_group_already_ours_without_cap_setgid_keep_our_groups_and_serve(
    wsgid: Callable[..., WsgidServer],
) -> None:
    # A container's entrypoint already runs as the configured user (Dockerfile `USER app`
    # and `user = "app"` in the image's config), with supplementary groups the runtime gave
    # it (the user's /etc/group entries, `--group-add`, Kubernetes' fsGroup) and without
    # CAP_SETGID to change them: there is nothing to switch. Replacing the groups anyway
    # failed every worker's boot with EPERM (exit 3); gunicorn serves. Root without
    # CAP_SETGID (setpriv) stands for that process here, as the tests run as root.
    need_root()
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    started_in = [0, 5]
    setpriv = ["setpriv", f"--groups={','.join(map(str, started_in))}", "--bounding-set=-setgid"]

    def command(port: int) -> list[str]:
        serve = [sys.executable, "-m", "wsgid", "breakable_app:app", "--bind", f"127.0.0.1:{port}"]
        return [*setpriv, *serve, "--user", "0", "--group", "0", "--workers", "1"]

    server = wsgid(None, command=command, env={"PYTHONPATH": str(SYSTEM_APPS)}, workers=1)
    answer = json.loads(server.get("/").body)
    assert (answer["uid"], answer["gid"]) == (0, 0), answer
    assert sorted(answer["groups"]) == started_in, answer
    assert server.stop() == 0, server.errlog()


def test_root_without_the_capabilities_to_switch_is_exit_2_naming_the_capability(
    wsgid: Callable[..., WsgidServer],
) -> None:
    # Root in a container that dropped its capabilities (Kubernetes' `drop: [ALL]`) cannot
    # become `nobody`: said at start, as for a non-root master, not as a worker's boot
    # failure (exit 3, "Operation not permitted") after binding.
    need_root()
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")

    def command(port: int) -> list[str]:
        serve = [sys.executable, "-m", "wsgid", "sleep_app:app", "--bind", f"127.0.0.1:{port}"]
        return ["setpriv", "--bounding-set=-setuid,-setgid", *serve, "--user", "nobody"]

    server = wsgid(None, command=command, start=False)
    assert server.wait_exit(timeout=30) == ExitCode.CONFIG, server.errlog()
    err = server.errlog()
    assert "user = 'nobody'" in err and "CAP_SETUID" in err, err
    assert "worker.boot_failed" not in err, err
