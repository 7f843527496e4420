"""wsgid under a real systemd: the shipped units, socket activation, reload, stop, upgrade.

One systemd 252 boots as PID 1 of its own namespaces for the whole module (sysd_box.py), with
wsgid installed from this checkout and the units from systemd/. The tests run in file order
and each leaves the box as the next expects (the socket listening). The only changes to the
shipped units are drop-ins: wsgid.socket listens on a free port instead of 8000, and
wsgid.service may write into /run/wsgid-test (the sleep app's "request started" markers).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.client import poll
from support.server import APPS_DIR, free_port
from system.sysd_box import BoxError, SystemdBox, unavailable

SYSTEM_APPS = Path(__file__).resolve().parent / "apps"
TEST_LIB = "/usr/local/lib/wsgid-test"
MARKERS = "/run/wsgid-test"


@pytest.fixture(scope="module")
def box() -> Iterator[SystemdBox]:
    reason = unavailable()
    if reason:
        pytest.skip(f"cannot boot systemd here: {reason}")
    port = free_port()
    b = SystemdBox()
    b.port = port
    b.install_wsgid()
    b.put(f"{TEST_LIB}/sleep_app.py", (APPS_DIR / "sleep_app.py").read_text())
    b.put(f"{TEST_LIB}/breakable_app.py", (SYSTEM_APPS / "breakable_app.py").read_text())
    b.put(
        "/etc/wsgid/app.toml",
        f'app = "sleep_app:app"\npythonpath = ["{TEST_LIB}"]\nworkers = 2\n'
        f'raw_env = ["TESTAPP_MARKERS={MARKERS}"]\n',
    )
    b.put(
        "/etc/wsgid/demo.toml",
        f'app = "breakable_app:app"\npythonpath = ["{TEST_LIB}"]\n'
        'raw_env = ["TESTAPP_INSTANCE=demo"]\n',
    )
    b.put(
        "/etc/systemd/system/wsgid.socket.d/test-port.conf",
        f"[Socket]\nListenStream=\nListenStream=127.0.0.1:{port}\n",
    )
    b.put(
        "/etc/systemd/system/wsgid.service.d/test-markers.conf",
        f"[Service]\nReadWritePaths={MARKERS}\n",
    )
    b.put("/usr/lib/tmpfiles.d/wsgid-test.conf", f"d {MARKERS} 1777 root root -\n")
    try:
        b.start()
    except BoxError as exc:
        b.stop()
        pytest.fail(str(exc))
    try:
        yield b
    finally:
        b.stop()
        assert not b.leftovers(), f"the box left {b.leftovers()}"


def get(port: int, path: str = "/pid", timeout: float = 30) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def main_pid(box: SystemdBox, unit: str = "wsgid.service") -> int:
    return int(box.show(unit, "MainPID"))


def test_start_socket_then_first_request_activates_the_service(box: SystemdBox) -> None:
    port = box.port
    box.systemctl("start", "wsgid.socket")
    assert box.systemctl("is-active", "wsgid.service", check=False) == "inactive"
    status, _body = get(port)
    assert status == 200, box.diagnose("wsgid.service")
    # A booted worker may answer a moment before the master has told systemd READY=1.
    poll(
        lambda: box.systemctl("is-active", "wsgid.service", check=False) == "active",
        timeout=10,
        what="wsgid.service active",
    )
    master = main_pid(box)
    assert "wsgid: master" in box.run("cat", f"/proc/{master}/cmdline").stdout
    # Sampled once a second: a sample may have caught the first request in the app.
    poll(
        lambda: box.show("wsgid.service", "StatusText") == "serving with 2 workers: 0 busy, 2 idle",
        timeout=10,
        what="STATUS with both workers idle",
    )
    assert box.show("wsgid.service", "NRestarts") == "0"
    # Served on systemd's socket: wsgid bound nothing itself.
    assert "listening=http://127.0.0.1:" in box.journal("wsgid.service")


def test_wsgid_status_reads_the_control_socket_in_the_units_runtime_directory(
    box: SystemdBox,
) -> None:
    """The packaged unit has RuntimeDirectory=wsgid/main: with control_socket = "auto" the socket
    is /run/wsgid/main/control.sock, 0600, owned by the service's dynamic user, and root reads the
    status through it (root passes the master's peer-credentials check)."""
    assert get(box.port)[0] == 200
    master = main_pid(box)
    mode, owner = box.run("stat", "-c", "%a %U", "/run/wsgid/main/control.sock").stdout.split()
    assert mode == "600" and owner != "root", (mode, owner)
    out = box.run("env", "RUNTIME_DIRECTORY=/run/wsgid/main", "wsgid", "status", "--json")
    doc = json.loads(out.stdout)
    assert doc["master"]["pid"] == master and doc["master"]["state"] == "serving", doc
    assert len(doc["workers"]) == 2 and {w["state"] for w in doc["workers"]} <= {"idle", "busy"}
    table = box.run("env", "RUNTIME_DIRECTORY=/run/wsgid/main", "wsgid", "status").stdout
    assert f"master {master}" in table and "sleep_app:app" in table, table


class Load:
    """Clients hammering the server with fresh connections until stopped; counts failures."""

    def __init__(self, port: int, clients: int = 4) -> None:
        self.port = port
        self.ok = 0
        self.failed: list[str] = []
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = get(self.port, timeout=10)
                with self._lock:
                    if status == 200:
                        self.ok += 1
                        self.pids.add(int(body["pid"]))  # type: ignore[call-overload]
                    else:
                        self.failed.append(f"status {status}")
            except (OSError, http.client.HTTPException, ValueError) as exc:
                with self._lock:
                    self.failed.append(repr(exc))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


def test_reload_under_load_fails_no_request_and_leaves_the_unit_active(box: SystemdBox) -> None:
    port = box.port
    assert get(port)[0] == 200
    master = main_pid(box)
    with Load(port) as load:
        poll(lambda: load.ok >= 50, timeout=20, what="load before the reload")
        before = set(load.pids)
        box.systemctl("reload", "wsgid.service")
        poll(
            lambda: "reload.done" in box.journal("wsgid.service"),
            timeout=30,
            what="reload.done in the journal",
        )
        mark = load.ok
        poll(lambda: load.ok >= mark + 50, timeout=20, what="load after the reload")
    assert not load.failed, load.failed[:5]
    assert load.pids - before, "no request was served by the new generation"
    assert box.systemctl("is-active", "wsgid.service") == "active", box.diagnose("wsgid.service")
    assert main_pid(box) == master
    status = box.show("wsgid.service", "StatusText")
    busy_idle = re.fullmatch(r"serving with 2 workers: (\d) busy, (\d) idle", status)
    assert busy_idle and sum(map(int, busy_idle.groups())) == 2, status


def test_binary_upgrade_leaves_the_unit_active_with_the_new_mainpid(box: SystemdBox) -> None:
    port = box.port
    assert get(port)[0] == 200
    old = main_pid(box)
    box.systemctl("kill", "--kill-who=main", "--signal=SIGUSR2", "wsgid.service")
    new = poll(
        lambda: (pid := main_pid(box)) != old and pid,
        timeout=30,
        what="systemd to follow the new master (MAINPID=)",
    )
    assert box.run("cat", f"/proc/{new}/status").stdout.count(f"PPid:\t{old}") == 1
    box.run("kill", "-TERM", str(old))  # retire the old master, as the operator would
    poll(
        lambda: box.run("test", "-e", f"/proc/{old}", check=False).returncode != 0,
        timeout=30,
        what="the old master to exit",
    )
    assert box.systemctl("is-active", "wsgid.service") == "active", box.diagnose("wsgid.service")
    assert main_pid(box) == new
    for _ in range(5):
        assert get(port)[0] == 200
    # The new master is fully in charge: a reload goes to it and completes.
    journal_before = box.journal("wsgid.service").count("reload.done")
    box.systemctl("reload", "wsgid.service")
    poll(
        lambda: box.journal("wsgid.service").count("reload.done") > journal_before,
        timeout=30,
        what="a reload handled by the new master",
    )
    assert box.systemctl("is-active", "wsgid.service") == "active"


def test_stop_lets_the_in_flight_request_finish_and_logs_reach_the_journal(
    box: SystemdBox,
) -> None:
    port = box.port
    assert get(port)[0] == 200
    result: dict[str, object] = {}

    def slow() -> None:
        try:
            result["status"], result["body"] = get(port, "/sleep?s=2&tag=stop")
        except Exception as exc:
            result["error"] = repr(exc)

    client = threading.Thread(target=slow)
    client.start()
    poll(
        lambda: box.path(f"{MARKERS}/started-stop").exists(),
        timeout=10,
        what="the slow request to reach the app",
    )
    box.systemctl("stop", "wsgid.service")
    client.join(timeout=30)
    assert result.get("status") == 200, result
    assert box.systemctl("is-active", "wsgid.service", check=False) == "inactive"
    journal = box.journal("wsgid.service")
    for event in ("master.started", "master.stopping", "master.stopped", "Stopped wsgid.service"):
        assert event in journal, journal
    assert "signal=SIGTERM" in journal
    # The socket stayed: the next connection starts the service again.
    assert box.systemctl("is-active", "wsgid.socket") == "active"
    assert get(port)[0] == 200
    box.systemctl("stop", "wsgid.service", "wsgid.socket")


def test_template_instance_serves_its_own_config_on_its_own_unix_socket(
    box: SystemdBox,
) -> None:
    box.systemctl("start", "wsgid@demo.socket")
    sock_path = box.path("/run/wsgid/demo.sock")
    assert sock_path.exists()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(sock_path))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    answer = json.loads(body)
    assert answer["instance"] == "demo"
    assert answer["uid"] != 0, "DynamicUser: the app must not run as root"
    assert box.systemctl("is-active", "wsgid@demo.service") == "active"
    assert "/etc/wsgid/demo.toml" in box.show("wsgid@demo.service", "ExecStart")
    box.systemctl("stop", "wsgid@demo.service", "wsgid@demo.socket")
    assert box.systemctl("is-active", "wsgid@demo.service", check=False) == "inactive"


def test_an_app_that_cannot_be_loaded_fails_the_unit_with_the_status_the_docs_show(
    box: SystemdBox,
) -> None:
    """Exit status 4 reaches systemd as the main process's status: `systemctl status` shows
    the number, and systemd's log line names it as its LSB table does (NOPERMISSION), as
    docs/running.md says."""
    box.write("/etc/wsgid/broken.toml", 'app = "no_such_module:app"\nworkers = 1\n')
    units = ("wsgid@broken.service", "wsgid@broken.socket")
    try:
        box.run("systemctl", "start", "wsgid@broken.service", check=False)
        assert box.show("wsgid@broken.service", "ExecMainStatus") == "4"
        status = box.run("systemctl", "--no-pager", "status", units[0], check=False).stdout
        assert re.search(r"Main PID: \d+ \(code=exited, status=4\)", status), status
        logged = "Main process exited, code=exited, status=4/NOPERMISSION"
        poll(lambda: logged in box.journal(units[0]), timeout=10, what="systemd's log line")
        assert "`4/NOPERMISSION`" in exit_code_row(4)
    finally:
        box.systemctl("stop", *units, check=False)
        box.systemctl("reset-failed", *units, check=False)
        box.run("rm", "-f", "/etc/wsgid/broken.toml")


def exit_code_row(code: int) -> str:
    """The row of `code` in docs/running.md's exit code table."""
    text = (Path(__file__).resolve().parents[2] / "docs/running.md").read_text()
    table = text.split("## Exit codes", 1)[1]
    row = re.search(rf"^\| {code} \|.*$", table, re.M)
    assert row, f"no row for {code} in docs/running.md's exit code table"
    return row[0]
