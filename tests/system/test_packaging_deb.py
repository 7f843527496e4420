"""The Debian package: it builds, lints clean, installs on this machine, runs, and goes away.

The .deb is built once per session by packaging/build-deb.sh (packaging_support.ARTIFACTS),
into a temporary directory. The install tests really run `dpkg -i` on this machine: the
module's fixture refuses to touch a machine where wsgid is already installed, and purges the
package (and removes the wsgid user it created) at the end whatever happened, so that no
/usr/bin/wsgid is ever left behind. Under a real systemd, see test_packaging_systemd.py.
"""

from __future__ import annotations

import grp
import gzip
import http.client
import io
import os
import pwd
import signal
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.server import free_port
from system.packaging_support import (
    ARTIFACTS,
    SYSTEM_PYTHON,
    VERSION,
    check_man_page_files,
    deb_paths,
    ensure_apt,
    host_lock,
    need_root,
    python_minor,
    run,
    wait_for,
)
from wsgid.exitcodes import ExitCode

pytestmark = pytest.mark.timeout(900)

UNITS = ("wsgid.service", "wsgid.socket", "wsgid@.service", "wsgid@.socket")


@pytest.fixture(scope="module")
def deb(request: pytest.FixtureRequest) -> Path:
    return ARTIFACTS.deb(request.config)


def site_packages() -> str:
    return f"/usr/lib/wsgid/lib/python{python_minor()}/site-packages"


def expected_payload() -> list[str]:
    """The files the package installs (docs/packaging.md lists the same)."""
    return [
        "/usr/bin/wsgid",
        "/usr/lib/wsgid/pyvenv.cfg",
        "/usr/lib/wsgid/bin/python3",
        f"{site_packages()}/wsgid/cli.py",
        f"{site_packages()}/wsgid/demo.py",
        *(f"/lib/systemd/system/{unit}" for unit in UNITS),
        "/usr/lib/sysusers.d/wsgid.conf",
        "/usr/lib/tmpfiles.d/wsgid.conf",
        "/etc/wsgid/app.toml",
        "/etc/logrotate.d/wsgid",
        "/usr/share/man/man1/wsgid.1.gz",
        "/usr/share/doc/wsgid/copyright",
        "/var/log/wsgid",
    ]


def test_deb_builds_with_the_documented_payload(deb: Path) -> None:
    paths = set(deb_paths(deb))
    missing = [p for p in expected_payload() if p not in paths]
    assert not missing, f"not in {deb.name}: {missing}"
    # Bundled dependencies, no byte-code (postinst compiles it), no pip console scripts.
    for dist in ("pydantic", "pydantic_core", "httptools", "structlog", "sdnotify", "daemon"):
        assert f"{site_packages()}/{dist}/__init__.py" in paths, dist
    assert not [p for p in paths if "__pycache__" in p or p.endswith(".pyc")]
    assert not [p for p in paths if p.startswith(f"{site_packages()}/bin")]


def test_deb_depends_only_on_the_system_python_and_base_libraries(deb: Path) -> None:
    fields = run(["dpkg-deb", "-f", str(deb), "Architecture", "Depends"]).stdout
    arch = fields.splitlines()[0].split(":", 1)[1].strip()
    depends = fields.split("Depends:", 1)[1]
    assert arch == run(["dpkg", "--print-architecture"]).stdout.strip()  # compiled wheels
    major, minor = python_minor().split(".")
    assert f"python3 (>= {major}.{minor}~)" in depends
    assert f"python3 (<< {major}.{int(minor) + 1})" in depends
    names = {d.strip().split()[0] for alt in depends.split(",") for d in alt.split("|")}
    allowed = {"python3", "libc6", "libgcc-s1", "systemd"}
    allowed |= {"systemd-standalone-sysusers", "systemd-sysusers"}
    assert names <= allowed, f"unexpected dependencies: {names - allowed}"


def test_man_page_files_section_lists_what_the_package_installs(deb: Path) -> None:
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as members:
        page = members.extractfile("./usr/share/man/man1/wsgid.1.gz")
        assert page is not None
        man = gzip.decompress(page.read()).decode()
    modes = [line.split()[0] for line in run(["dpkg-deb", "-c", str(deb)]).stdout.splitlines()]
    check_man_page_files(man, list(zip(deb_paths(deb), modes, strict=True)))


def test_lintian_reports_no_errors_and_no_warnings(deb: Path, tmp_path: Path) -> None:
    ensure_apt("lintian")
    changes = next(deb.parent.glob("*.changes"))
    # lintian leaves its database file (`mldbm-elf-*`) in TMPDIR: this test's, not /tmp.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    result = run(["lintian", "--fail-on", "error,warning", str(changes)], check=False, env=env)
    problems = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


# ------------------------------------------------------------------ installed on this machine


def _dpkg_status(package: str) -> str:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    status = result.stdout.strip() if result.returncode == 0 else ""
    return "not-installed" if not status or status.endswith(" not-installed") else status


def _exists(name: str, db: str) -> bool:
    try:
        (pwd.getpwnam if db == "passwd" else grp.getgrnam)(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def installed(deb: Path) -> Iterator[Path]:
    """`dpkg -i` the package on this machine; purge it at the end whatever happened."""
    need_root()
    with host_lock():
        yield from _install_on_host(deb)


def _install_on_host(deb: Path) -> Iterator[Path]:
    if _dpkg_status("wsgid") != "not-installed":
        pytest.skip(f"wsgid is already known to dpkg here ({_dpkg_status('wsgid')}): not touched")
    if os.path.lexists("/usr/bin/wsgid"):
        pytest.skip("/usr/bin/wsgid already exists on this machine: not touched")
    user_existed, group_existed = _exists("wsgid", "passwd"), _exists("wsgid", "group")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        run(["dpkg", "-i", str(deb)], env=env)
        yield deb
    finally:
        subprocess.run(["dpkg", "--purge", "wsgid"], capture_output=True, env=env)
        # An instance a test enabled, should purge have failed to remove its symlinks.
        for link in Path("/etc/systemd/system").glob("*/wsgid@demo.*"):
            if link.is_symlink():
                link.unlink()
        if not user_existed and _exists("wsgid", "passwd"):
            subprocess.run(["userdel", "wsgid"], capture_output=True)
        if not group_existed and _exists("wsgid", "group"):
            subprocess.run(["groupdel", "wsgid"], capture_output=True)
        assert not os.path.lexists("/usr/bin/wsgid"), "/usr/bin/wsgid left behind"
        assert not os.path.lexists("/usr/lib/wsgid"), "/usr/lib/wsgid left behind"


def test_dpkg_install_puts_files_where_listed(installed: Path) -> None:
    missing = [p for p in expected_payload() if not os.path.lexists(p)]
    assert not missing, f"not installed: {missing}"
    assert os.access("/usr/bin/wsgid", os.X_OK)
    assert os.path.realpath("/usr/lib/wsgid/bin/python3") == os.path.realpath(SYSTEM_PYTHON)
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "wsgid"]).stdout
    assert "/etc/wsgid/app.toml" in conffiles and "/etc/logrotate.d/wsgid" in conffiles
    # The system user (sysusers.d) and its log directory.
    user = pwd.getpwnam("wsgid")
    log = os.stat("/var/log/wsgid")
    assert (log.st_uid, log.st_gid, stat.S_IMODE(log.st_mode)) == (user.pw_uid, user.pw_gid, 0o750)
    # The socket is enabled; the service and the templates are not.
    wants = Path("/etc/systemd/system")
    assert (wants / "sockets.target.wants/wsgid.socket").is_symlink()
    enabled = [p.name for p in wants.rglob("wsgid*") if p.is_symlink()]
    assert enabled == ["wsgid.socket"], enabled
    # postinst byte-compiled the bundled code for the system Python.
    assert list(Path(site_packages(), "wsgid/__pycache__").glob("cli.cpython-*.pyc"))


def installed_wsgid(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """/usr/bin/wsgid from `/` with a bare environment: nothing of this checkout or its venv."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": "/nonexistent"}
    return run(["/usr/bin/wsgid", *args], env=env, cwd="/", timeout=timeout, check=False)


def test_installed_wsgid_reports_version_and_checks_the_shipped_config(installed: Path) -> None:
    version = installed_wsgid("--version")
    assert version.returncode == 0, version
    assert version.stdout.strip() == f"wsgid {VERSION} (compiled)"  # the per-request modules
    check = installed_wsgid("check", "--config", "/etc/wsgid/app.toml")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "configuration OK" in check.stdout and "wsgid.demo:app" in check.stdout
    bad = installed_wsgid("check", "--config", "/etc/wsgid/app.toml", "--workers", "0")
    assert bad.returncode == ExitCode.CONFIG, bad


def test_installed_wsgid_runs_on_its_bundled_libraries(installed: Path) -> None:
    probe = run(
        ["/usr/lib/wsgid/bin/python3", "-I", "-c",
         "import sys, pydantic, httptools, wsgid; print(pydantic.VERSION, wsgid.__file__);"
         "print(*sys.path)"],
    )  # fmt: skip
    first, path = probe.stdout.splitlines()[:2]
    version, where = first.split()
    assert version.startswith("2."), probe.stdout  # not Debian's python3-pydantic 1.x
    assert where.startswith(site_packages()), probe.stdout
    assert "/usr/lib/python3/dist-packages" not in path.split(), path


def test_installed_wsgid_serves_and_stops_gracefully_by_hand(installed: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        ["/usr/bin/wsgid", "--config", "/etc/wsgid/app.toml", "--bind", f"127.0.0.1:{port}"],
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def answer() -> tuple[int, bytes] | None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/packaged")
                resp = conn.getresponse()
                return resp.status, resp.read()
            except OSError:
                assert proc.poll() is None, proc.communicate()[0]
                return None

        status, body = wait_for(answer, 30, "the installed wsgid to answer")
        assert status == 200 and body.startswith(f"Hello from wsgid {VERSION}".encode())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_logrotate_accepts_the_snippet(installed: Path, tmp_path: Path) -> None:
    ensure_apt("logrotate")
    result = run(
        ["logrotate", "--debug", "--state", str(tmp_path / "state"), "/etc/logrotate.d/wsgid"],
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in (result.stdout + result.stderr).lower(), result.stderr


def test_dpkg_remove_keeps_the_config_and_purge_removes_everything(installed: Path) -> None:
    """Instances the administrator enabled included: their symlinks in /etc/systemd/system
    point at the package's templates, and purge removes them (debhelper knows only the units
    it enabled itself)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["systemctl", "enable", "wsgid@demo.service"])  # Also=wsgid@demo.socket
    links = [p.name for p in Path("/etc/systemd/system").rglob("wsgid@demo.*") if p.is_symlink()]
    assert sorted(links) == ["wsgid@demo.service", "wsgid@demo.socket"], links
    run(["dpkg", "-r", "wsgid"], env=env)
    for path in ("/usr/bin/wsgid", "/usr/lib/wsgid", "/lib/systemd/system/wsgid.socket"):
        assert not os.path.lexists(path), f"{path} still there after dpkg -r"
    assert os.path.exists("/etc/wsgid/app.toml"), "dpkg -r removed a conffile"
    assert _dpkg_status("wsgid") == "deinstall ok config-files"

    run(["dpkg", "--purge", "wsgid"], env=env)
    left = [p for p in expected_payload() if os.path.lexists(p)]
    left += [p for p in ("/etc/wsgid", "/var/lib/wsgid") if os.path.lexists(p)]
    left += [str(p) for p in Path("/etc/systemd/system").rglob("wsgid*")]
    left += [str(p) for p in Path("/var/lib/systemd/deb-systemd-helper-enabled").rglob("wsgid*")]
    assert not left, f"left after dpkg --purge: {left}"
    assert _dpkg_status("wsgid") == "not-installed"
