"""The packages under a real systemd: install, socket activation, reload, purge/erase.

Each package gets its own freshly booted systemd 252 (sysd_box.SystemdBox: PID 1 of its own
namespaces, root an overlay of this machine's `/` with a tmpfs upper layer, so nothing the
package does reaches the host). The box's network is the host's: what wsgid.socket listens on
answers on the host's loopback. The only change to what the packages ship is a drop-in that
moves wsgid.socket from 127.0.0.1:8000 to a free port, put in place before installation as an
administrator would.

Debian's package is installed with `apt-get install ./wsgid_*.deb` (its maintainer scripts
enable and start the socket); the RPM with `rpm -ivh --nodeps` (Debian's packages are not in
the rpm database), after which the socket is enabled and started as on an RPM distribution,
where presets leave it off.

The HTTPS tests apply docs/tls.md's systemd drop-ins exactly as the page prints them (the
blocks marked `<!-- snippet: ... -->`), as `systemctl edit wsgid` would save them, with a
certificate for 127.0.0.1 made by the openssl command where the page puts it, under the
shipped unit's hardening (DynamicUser=, PrivateUsers=, ...).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.client import get, get_unix
from support.doc_snippets import snippet
from support.server import free_port
from support.tls import Certs, certificates, fingerprint, served_fingerprint
from system.packaging_support import (
    ARTIFACTS,
    REPO,
    VERSION,
    ensure_apt,
    host_lock,
    need_root,
    run,
    wait_for,
)

try:
    from system.sysd_box import BoxError, SystemdBox, unavailable
except ImportError as exc:  # the systemd tests' helper is missing from this checkout
    SystemdBox = None  # type: ignore[assignment,misc]
    BOX_IMPORT_ERROR = str(exc)
else:
    BOX_IMPORT_ERROR = ""

pytestmark = pytest.mark.timeout(900)

# What a package may leave behind nothing of once purged / erased.
PAYLOAD = (
    "/usr/bin/wsgid",
    "/usr/lib/wsgid",
    "/etc/wsgid",
    "/etc/logrotate.d/wsgid",
    "/var/log/wsgid",
    "/usr/share/man/man1/wsgid.1.gz",
    "/usr/lib/sysusers.d/wsgid.conf",
    "/usr/lib/tmpfiles.d/wsgid.conf",
    "/lib/systemd/system/wsgid.socket",
    "/usr/lib/systemd/system/wsgid.socket",
    "/lib/systemd/system/wsgid.service",
    "/usr/lib/systemd/system/wsgid.service",
    "/etc/systemd/system/sockets.target.wants/wsgid.socket",
)


def boot(package: Path) -> Iterator[SystemdBox]:
    """A booted box holding `package` in /var/tmp, wsgid.socket moved to a free port."""
    need_root()
    with host_lock():  # the box's root is the host's: no host install test meanwhile
        yield from _boot(package)


def _boot(package: Path) -> Iterator[SystemdBox]:
    if BOX_IMPORT_ERROR:
        pytest.skip(f"tests/system/sysd_box.py cannot be imported: {BOX_IMPORT_ERROR}")
    reason = unavailable()
    if reason:
        pytest.skip(f"cannot boot systemd here: {reason}")
    if os.path.lexists("/usr/bin/wsgid"):
        pytest.skip("/usr/bin/wsgid exists on this machine: the box would see it")
    box = SystemdBox()
    box.port = free_port()
    box.put(
        "/etc/systemd/system/wsgid.socket.d/test-port.conf",
        f"[Socket]\nListenStream=\nListenStream=127.0.0.1:{box.port}\n",
    )
    try:
        box.start()
    except BoxError as exc:
        box.stop()
        pytest.fail(str(exc))
    try:
        # This machine's image stops maintainer scripts from starting services (exit 101).
        box.run("rm", "-f", "/usr/sbin/policy-rc.d")
        # The box mounts this checkout's wsgid under /usr/lib/wsgid for the systemd tests;
        # the package brings its own there: take them away (rmdir: only once unmounted).
        for mountpoint in ("/usr/lib/wsgid/src", "/usr/lib/wsgid/site-packages"):
            box.run("umount", mountpoint, check=False)
        box.run("rmdir", "/usr/lib/wsgid/src", "/usr/lib/wsgid/site-packages", check=False)
        box.run("rmdir", "/usr/lib/wsgid", check=False)
        assert not os.path.lexists(box.path("/usr/lib/wsgid")), "the box has a /usr/lib/wsgid"
        shutil.copy(package, box.path(f"/var/tmp/{package.name}"))
        yield box
    finally:
        box.stop()
        assert not box.leftovers(), f"the box left {box.leftovers()}"


def wsgid_processes(box: SystemdBox) -> list[str]:
    out = box.run("ps", "-eo", "pid=,args=", check=False).stdout
    return [line.strip() for line in out.splitlines() if "wsgid:" in line]


def left_behind(box: SystemdBox) -> list[str]:
    return [p for p in PAYLOAD if os.path.lexists(box.path(p))]


def assert_unit_gone(box: SystemdBox, unit: str) -> None:
    state = box.systemctl("show", "-P", "ActiveState", unit, check=False)
    load = box.systemctl("show", "-P", "LoadState", unit, check=False)
    assert (state, load) == ("inactive", "not-found"), f"{unit}: {state}/{load}"


# ------------------------------------------------------------------ Debian package


@pytest.fixture(scope="module")
def deb_box(request: pytest.FixtureRequest) -> Iterator[SystemdBox]:
    deb = ARTIFACTS.deb(request.config)
    # On the host, before the box boots: the box's root is an overlay of the host's. ssl-cert
    # brings the group of docs/tls.md's ssl-cert drop-in (and /etc/ssl/private, 0710 with it).
    ensure_apt("logrotate", "ssl-cert", "curl", "openssl")
    yield from boot(deb)


def apt_install(box: SystemdBox) -> None:
    """`apt-get install ./wsgid_*.deb` in the box, as an administrator installs it."""
    deb = "/var/tmp/" + next(p.name for p in box.path("/var/tmp").glob("wsgid_*.deb"))
    box.run(
        "env", "DEBIAN_FRONTEND=noninteractive",
        "apt-get", "install", "-y", "--no-install-recommends", deb,
        timeout=300,
    )  # fmt: skip


def ensure_installed(box: SystemdBox) -> None:
    """The package installed in the box (by the install test, or now if it did not run)."""
    status = box.run("dpkg-query", "-W", "-f=${Status}", "wsgid", check=False).stdout
    if status != "install ok installed":
        apt_install(box)


def test_apt_install_starts_the_socket_and_the_first_request_starts_the_service(
    deb_box: SystemdBox,
) -> None:
    box = deb_box
    apt_install(box)
    assert box.systemctl("is-active", "wsgid.socket", check=False) == "active", box.diagnose(
        "wsgid.socket"
    )
    assert box.systemctl("is-enabled", "wsgid.socket", check=False) == "enabled"
    # Nothing runs until a client connects; neither the service nor the templates are enabled.
    assert box.systemctl("is-active", "wsgid.service", check=False) == "inactive"
    assert box.systemctl("is-enabled", "wsgid.service", check=False) == "disabled"
    assert box.systemctl("is-enabled", "wsgid@demo.service", check=False) == "disabled"
    assert box.systemctl("is-enabled", "wsgid@demo.socket", check=False) == "disabled"

    status, body = get(box.port, "/first")
    assert status == 200, box.diagnose("wsgid.service")
    assert body.startswith(f"Hello from wsgid {VERSION}!\nGET /first".encode())
    assert box.systemctl("is-active", "wsgid.service", check=False) == "active"
    main_pid = box.systemctl("show", "-P", "MainPID", "wsgid.service")
    assert box.run("cat", f"/proc/{main_pid}/cmdline").stdout.startswith("wsgid: master")


def workers(box: SystemdBox, main_pid: str) -> set[str]:
    return set(box.run("pgrep", "-P", main_pid, check=False).stdout.split())


def test_systemctl_reload_replaces_the_workers_under_the_same_master(
    deb_box: SystemdBox,
) -> None:
    box = deb_box
    main_pid = box.systemctl("show", "-P", "MainPID", "wsgid.service")
    before = wait_for(lambda: workers(box, main_pid), 30, "the first workers")
    box.systemctl("reload", "wsgid.service")
    after = wait_for(
        lambda: (w := workers(box, main_pid)) and not (w & before) and len(w) == len(before) and w,
        30,
        "a new generation of workers",
    )
    assert after
    assert box.systemctl("show", "-P", "MainPID", "wsgid.service") == main_pid
    assert box.systemctl("is-active", "wsgid.service", check=False) == "active"
    assert get(box.port, "/after-reload")[0] == 200


def test_a_template_instance_serves_its_own_config_on_its_unix_socket(
    deb_box: SystemdBox,
) -> None:
    """wsgid@NAME.socket -> /run/wsgid/NAME.sock, wsgid@NAME.service reads /etc/wsgid/NAME.toml.

    Left running on purpose: the purge test then proves that removal stops instances too.
    """
    box = deb_box
    box.write("/etc/wsgid/demo.toml", 'app = "wsgid.demo:app"\nworkers = 1\n')
    box.systemctl("start", "wsgid@demo.socket")
    status, body = get_unix(str(box.path("/run/wsgid/demo.sock")), "/instance")
    assert status == 200, box.diagnose("wsgid@demo.service")
    assert b"GET /instance" in body
    assert box.systemctl("is-active", "wsgid@demo.service", check=False) == "active"
    # wsgid.service's runtime directory is its own (/run/wsgid/main): starting and stopping
    # it leaves the instances' sockets in /run/wsgid alone.
    assert get(box.port, "/main")[0] == 200
    box.systemctl("stop", "wsgid.service")
    status, _ = get_unix(str(box.path("/run/wsgid/demo.sock")), "/instance-after")
    assert status == 200, box.diagnose("wsgid@demo.service")


# The log file lines of /etc/wsgid/app.toml as shipped, commented out.
LOG_HINT = re.compile(r'^# ((errorlog|accesslog) = "(/[^"]+)")$', re.M)


@contextlib.contextmanager
def log_file_hints_uncommented(box: SystemdBox) -> Iterator[dict[str, Path]]:
    """/etc/wsgid/app.toml as shipped with its errorlog and accesslog lines uncommented, as a
    user would, and wsgid.service restarted; yields each log file (as seen from the host).
    At the end the file is as shipped again, the logs are removed and the service restarted."""
    ensure_installed(box)
    conf = box.path("/etc/wsgid/app.toml")
    shipped = conf.read_text()
    hints = {m.group(2): m.group(3) for m in LOG_HINT.finditer(shipped)}
    assert set(hints) == {"errorlog", "accesslog"}, shipped
    conf.write_text(LOG_HINT.sub(r"\1", shipped))
    try:
        restart_wsgid(box)
        yield {setting: box.path(path) for setting, path in hints.items()}
    finally:
        conf.write_text(shipped)
        box.run("sh", "-c", "rm -f /var/log/wsgid/*")
        box.systemctl("restart", "wsgid.service", check=False)


def has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


def test_the_shipped_configs_log_file_lines_work_under_the_shipped_unit(
    deb_box: SystemdBox,
) -> None:
    """The commented log paths of /etc/wsgid/app.toml, uncommented, under wsgid.service as
    shipped (ProtectSystem=strict, DynamicUser=): the unit leaves /var/log/wsgid writable."""
    box = deb_box
    with log_file_hints_uncommented(box) as logs:
        assert get(box.port, "/into-the-log-file")[0] == 200
        wait_for(lambda: has(logs["accesslog"], "/into-the-log-file"), 10, "the access log")
        wait_for(lambda: has(logs["errorlog"], "master.ready"), 10, "the error log")


def test_logrotate_rotates_the_log_files_and_usr1_makes_wsgid_reopen_them(
    deb_box: SystemdBox,
) -> None:
    """The packaged logrotate snippet, with the log files of the shipped config's lines."""
    box = deb_box
    with log_file_hints_uncommented(box) as logs:
        log, errors = logs["accesslog"], logs["errorlog"]
        rotated = log.with_name(log.name + ".1")
        assert get(box.port, "/before-rotation")[0] == 200
        wait_for(lambda: has(log, "/before-rotation"), 10, "access log")
        box.run("logrotate", "--force", "/etc/logrotate.d/wsgid")
        assert "/before-rotation" in rotated.read_text()
        # postrotate sent USR1: the master reopens its logs and passes the signal on; each
        # worker reopens when it gets it (a request it serves before then still lands in
        # access.log.1, which is why the snippet uses delaycompress).
        wait_for(
            lambda: (
                has(errors, "master.reopen_logs")
                or has(errors.with_name(errors.name + ".1"), "master.reopen_logs")
            ),
            10,
            "USR1",
        )

        def reopened() -> bool:
            assert get(box.port, "/after-rotation")[0] == 200
            return has(log, "/after-rotation")

        wait_for(reopened, 10, "wsgid to write to a new access.log")
        assert "/before-rotation" not in log.read_text()


# ------------------------------------------------------------------ HTTPS (docs/tls.md)

TLS_DOC = REPO / "docs" / "tls.md"
# Where the page's drop-ins put the certificate and its key.
APP_CERT = "/etc/ssl/certs/app.pem"
APP_KEY = "/etc/ssl/private/app.key"
# What `systemctl edit wsgid` saves.
OVERRIDE = "/etc/systemd/system/wsgid.service.d/override.conf"


@pytest.fixture(scope="module")
def tls_certs(session_tmp: Path) -> Iterator[Certs]:
    with certificates(session_tmp / "systemd-tls-certs") as made:
        yield made


@contextlib.contextmanager
def tls_drop_in(box: SystemdBox, name: str) -> Iterator[None]:
    """docs/tls.md's block `name`, verbatim, as wsgid.service's override; at the end the
    override, the certificate and the key are removed and the service runs as shipped again."""
    ensure_installed(box)
    try:
        box.write(OVERRIDE, snippet(TLS_DOC, name))
        box.systemctl("daemon-reload")
        yield
    finally:
        box.run("rm", "-f", OVERRIDE, APP_CERT, APP_KEY)
        box.run("rmdir", str(Path(OVERRIDE).parent), check=False)
        box.systemctl("daemon-reload")
        box.systemctl("reset-failed", "wsgid.service", check=False)
        box.systemctl("restart", "wsgid.service", check=False)


def put_certificate(box: SystemdBox, cert: Path, key: Path, key_mode: int, key_group: str) -> None:
    """The certificate (0644) and its key (`key_mode`, root:`key_group`) where the page says."""
    box.write(APP_CERT, cert.read_text())
    box.write(APP_KEY, key.read_text(), mode=key_mode)
    box.run("chown", f"root:{key_group}", APP_KEY)


def restart_wsgid(box: SystemdBox) -> None:
    box.run("systemctl", "restart", "wsgid.service", check=False)
    state = box.systemctl("is-active", "wsgid.service", check=False)
    assert state == "active", box.diagnose("wsgid.service")


def assert_serves_https(box: SystemdBox, certs: Certs, cert: Path) -> None:
    """curl --cacert gets the demo app's answer over HTTPS on the socket's port, and the
    certificate served is `cert`."""
    url = f"https://127.0.0.1:{box.port}/tls"
    done = run(["curl", "-sS", "--fail", "--max-time", "20", "--cacert", str(certs.ca), url])
    assert done.stdout.startswith(f"Hello from wsgid {VERSION}!\nGET /tls"), done.stdout
    assert served_fingerprint(box.port, certs.ca) == fingerprint(cert)


def test_systemd_tls_load_credential_serves_https(deb_box: SystemdBox, tls_certs: Certs) -> None:
    """LoadCredential=: the key stays root's alone (0600); systemd hands a copy to the
    dynamic user in the credentials directory (%d)."""
    box = deb_box
    with tls_drop_in(box, "systemd-tls-credentials"):
        put_certificate(box, tls_certs.server, tls_certs.server_key, 0o600, "root")
        restart_wsgid(box)
        assert_serves_https(box, tls_certs, tls_certs.server)
        # What wsgid read: systemd's copy, in the credentials directory (%d).
        logged = re.findall(r"tls\.certificate .*? file=(\S+)", box.journal("wsgid.service"))
        assert logged == ["/run/credentials/wsgid.service/tls-cert"], logged


def test_systemd_tls_ssl_cert_group_reload_rotates(deb_box: SystemdBox, tls_certs: Certs) -> None:
    """SupplementaryGroups=ssl-cert: the key 0640 root:ssl-cert in /etc/ssl/private, read by
    the service through the group; new files are served after `systemctl reload`."""
    box = deb_box
    with tls_drop_in(box, "systemd-tls-ssl-cert"):
        put_certificate(box, tls_certs.server, tls_certs.server_key, 0o640, "ssl-cert")
        restart_wsgid(box)
        assert_serves_https(box, tls_certs, tls_certs.server)
        main_pid = box.show("wsgid.service", "MainPID")

        put_certificate(box, tls_certs.server2, tls_certs.server2_key, 0o640, "ssl-cert")
        box.systemctl("reload", "wsgid.service")
        new = fingerprint(tls_certs.server2)
        wait_for(
            lambda: served_fingerprint(box.port, tls_certs.ca) == new,
            30,
            "the new certificate to be served after systemctl reload",
        )
        assert_serves_https(box, tls_certs, tls_certs.server2)
        assert box.show("wsgid.service", "MainPID") == main_pid  # reloaded, not restarted
        assert f"fingerprint_sha256={new}" in box.journal("wsgid.service")


def test_apt_purge_stops_and_removes_everything(deb_box: SystemdBox) -> None:
    box = deb_box
    box.run("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "purge", "-y", "wsgid")
    assert_unit_gone(box, "wsgid.socket")
    assert_unit_gone(box, "wsgid.service")
    assert_unit_gone(box, "wsgid@demo.socket")
    assert_unit_gone(box, "wsgid@demo.service")
    wait_for(lambda: not wsgid_processes(box), 10, "wsgid to exit")
    assert not os.path.lexists(box.path("/run/wsgid/demo.sock"))
    # The package's files are gone; the administrator's own instance config stays.
    assert sorted(os.listdir(box.path("/etc/wsgid"))) == ["demo.toml"]
    assert left_behind(box) == ["/etc/wsgid"], left_behind(box)
    status = box.run("dpkg-query", "-W", "-f=${Status}", "wsgid", check=False).stdout
    assert status in ("", "unknown ok not-installed"), status
    with pytest.raises(OSError):
        get(box.port)


# ------------------------------------------------------------------ RPM


@pytest.fixture(scope="module")
def rpm_box(request: pytest.FixtureRequest) -> Iterator[SystemdBox]:
    ensure_apt("rpm")
    rpm = ARTIFACTS.rpm(request.config)
    yield from boot(rpm)


def test_rpm_install_serves_and_erase_cleans_up(rpm_box: SystemdBox) -> None:
    box = rpm_box
    rpm = "/var/tmp/" + next(p.name for p in box.path("/var/tmp").glob("wsgid-*.rpm"))
    box.run("rpm", "-ivh", "--nodeps", rpm, timeout=300)
    assert box.run("getent", "passwd", "wsgid", check=False).returncode == 0  # %pre
    # As on an RPM distribution: the administrator enables the socket (presets may not).
    box.systemctl("enable", "--now", "wsgid.socket")
    assert box.systemctl("is-active", "wsgid.socket", check=False) == "active"

    status, body = get(box.port, "/from-rpm")
    assert status == 200, box.diagnose("wsgid.service")
    assert body.startswith(f"Hello from wsgid {VERSION}!\nGET /from-rpm".encode())
    assert box.systemctl("is-active", "wsgid.service", check=False) == "active"

    # An instance the administrator enabled: erase disables it (no dangling symlink).
    box.systemctl("enable", "wsgid@demo.socket")
    box.run("rpm", "-e", "wsgid", timeout=120)
    links = [str(p) for p in box.path("/etc/systemd/system").rglob("wsgid*") if p.is_symlink()]
    assert not links, f"left after rpm -e: {links}"
    assert_unit_gone(box, "wsgid.socket")
    assert_unit_gone(box, "wsgid.service")
    wait_for(lambda: not wsgid_processes(box), 10, "wsgid to exit")
    assert not left_behind(box), left_behind(box)
    assert box.run("rpm", "-q", "wsgid", check=False).returncode != 0
    with pytest.raises(OSError):
        get(box.port)
