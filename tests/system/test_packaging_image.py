"""The container image and its entrypoint: built with podman, run, stopped, and without engine.

The image is built once per session by packaging/build-image.sh in a private podman store
(packaging_support.Podman), on a stand-in for the Dockerfile's python:3.12-slim made from
Debian packages (no image registry is reachable here). Containers run with --network=host
(podman's default bridge would add interfaces and firewall rules to the host) or with no
network at all when they serve nothing.

The engine-less test runs packaging/docker/entrypoint.sh as PID 1 of a new pid namespace
(`unshare --pid --fork --mount-proc`), with this checkout's wsgid, as a container engine
would run it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from support.client import get
from support.server import APPS_DIR, free_port
from system.packaging_support import (
    ARTIFACTS,
    VERSION,
    Podman,
    children,
    cmdline,
    ensure_apt,
    need_root,
    ns_pid,
    pid1_entrypoint,
    wait_for,
)
from wsgid.exitcodes import ExitCode

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def podman(request: pytest.FixtureRequest) -> Podman:
    return ARTIFACTS.podman(request.config)


@pytest.fixture(scope="module")
def image(request: pytest.FixtureRequest, podman: Podman) -> str:
    return ARTIFACTS.image(request.config)


def answers(port: int, path: str = "/") -> tuple[int, bytes] | None:
    try:
        return get(port, path)
    except OSError:
        return None


def test_image_runs_wsgid_as_a_non_root_user_and_passes_flags_through(
    podman: Podman, image: str
) -> None:
    version = podman("run", "--rm", "--network=none", image, "--version")
    assert version.stdout.strip() == f"wsgid {VERSION} (compiled)"
    ids = podman("run", "--rm", "--network=none", image, "sh", "-c", "id -u; id -g; pwd")
    assert ids.stdout.split() == ["10001", "10001", "/app"]  # `IMAGE sh` runs sh
    config = podman("run", "--rm", "--network=none", "-e", "WSGID_WORKERS=5", image,
                    "config", "show", "--json", "--workers", "4")  # fmt: skip
    shown = json.loads(config.stdout)
    assert shown["workers"] == {"value": 4, "source": "flag:--workers"}
    assert shown["bind"] == {"value": ["0.0.0.0:8000"], "source": "default"}  # from PORT
    assert shown["app"]["value"] == "wsgid.demo:app"


def test_image_validates_its_configuration(podman: Podman, image: str) -> None:
    for how in (["check"], ["--check-config"]):
        ok = podman("run", "--rm", "--network=none", image, *how)
        assert "configuration OK" in ok.stdout and "wsgid.demo:app" in ok.stdout, how
    bad = podman("run", "--rm", "--network=none", "-e", "WSGID_WORKERS=0", image, "check",
                 check=False)  # fmt: skip
    assert bad.returncode == ExitCode.CONFIG and "WSGID_WORKERS" in bad.stderr, bad.stderr
    missing = podman("run", "--rm", "--network=none", image, "check", "no_such_module:app",
                     check=False)  # fmt: skip
    assert missing.returncode == ExitCode.APP_LOAD_FAILED, missing.stdout + missing.stderr


def start(
    podman: Podman, image: str, *options: str, env: dict[str, str], args: Sequence[str] = ()
) -> str:
    """A detached container on the host's network: podman `options`, wsgid `args`."""
    environment = [f"--env={k}={v}" for k, v in env.items()]
    return podman(
        "run", "--detach", "--network=host", *environment, *options, image, *args
    ).stdout.strip()


def test_image_serves_and_podman_stop_drains_the_in_flight_request(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    markers.chmod(0o777)  # written by the container's user
    port = free_port()
    container = podman(
        "run", "--detach", "--network=host",
        f"--volume={APPS_DIR}:/testapps:ro", f"--volume={markers}:/markers",
        f"--env=PORT={port}", "--env=WSGID_PYTHONPATH=/testapps", "--env=WSGID_WORKERS=2",
        "--env=TESTAPP_MARKERS=/markers",
        image, "sleep_app:app",
    ).stdout.strip()  # fmt: skip
    try:
        status, _ = wait_for(lambda: answers(port, "/pid"), 30, "the container to answer")
        assert status == 200
        health = podman("healthcheck", "run", container, check=False)
        assert health.returncode == 0, health.stdout + health.stderr

        result: dict[str, tuple[int, bytes] | OSError] = {}

        def slow() -> None:
            try:
                result["response"] = get(port, "/sleep?s=1&tag=inflight", timeout=30)
            except OSError as exc:
                result["error"] = exc

        client = threading.Thread(target=slow)
        client.start()
        wait_for(lambda: (markers / "started-inflight").exists(), 10, "the request to start")
        begin = time.monotonic()
        podman("stop", "--time", "10", container)
        took = time.monotonic() - begin
        client.join(10)
        assert took < 2.0, f"podman stop took {took:.2f} s"
        assert "error" not in result, result
        response = result["response"]
        assert isinstance(response, tuple), response
        assert response[0] == 200 and json.loads(response[1])["slept"] == 1.0
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", container).stdout
        assert exit_code.strip() == "0", podman("logs", container, check=False).stderr
        logs = podman("logs", container, check=False)
        assert "graceful=true" in logs.stdout + logs.stderr
    finally:
        podman("rm", "--force", "--time", "0", container, check=False)


def test_health_check_probes_the_addresses_wsgid_listens_on_whatever_gave_them(
    podman: Podman, image: str
) -> None:
    """A bind given by flag (`IMAGE -b ...`), not PORT or WSGID_BIND, is what the image's
    HEALTHCHECK probes: it reads the running master's sockets. With a side listener given by
    flag too it asks /livez there; a master that does not answer there is unhealthy."""
    port, side, unused = free_port(), free_port(), free_port()
    container = start(podman, image, env={"PORT": str(unused)}, args=["-b", f"127.0.0.1:{port}"])
    try:
        wait_for(
            lambda: answers(port, "/by-flag"), 30, "the container to answer on the flag's bind"
        )
        health = podman("healthcheck", "run", container, check=False)
        assert health.returncode == 0, health.stdout + health.stderr
    finally:
        podman("rm", "--force", "--time", "0", container, check=False)
    container = start(
        podman, image, env={"PORT": str(unused)},
        args=["--bind", f"[::]:{port}", "--metrics-bind", f"127.0.0.1:{side}"],
    )  # fmt: skip
    try:
        wait_for(lambda: answers(side, "/readyz") == (200, b"ready\n"), 30, "/readyz 200")
        health = podman("healthcheck", "run", container, check=False)
        assert health.returncode == 0, health.stdout + health.stderr
        # Not vacuous: a master that does not answer (stopped) is unhealthy.
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", container).stdout)
        os.kill(pid, signal.SIGSTOP)
        try:
            health = podman("healthcheck", "run", container, check=False)
            assert health.returncode != 0, health.stdout + health.stderr
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        podman("rm", "--force", "--time", "0", container, check=False)


def test_wsgid_workers_variable_sets_the_number_of_workers(podman: Podman, image: str) -> None:
    port = free_port()
    container = start(podman, image, env={"PORT": str(port), "WSGID_WORKERS": "3"})
    try:
        status, body = wait_for(lambda: answers(port, "/demo"), 30, "the container to answer")
        assert status == 200 and body.startswith(f"Hello from wsgid {VERSION}!".encode())
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", container).stdout)
        assert cmdline(pid).startswith("wsgid: master")
        assert os.stat(f"/proc/{pid}").st_uid == 10001  # not root, on the host too

        def worker_count() -> int:
            return sum(cmdline(c).startswith("wsgid: worker") for c in children(pid))

        wait_for(lambda: worker_count() == 3, 20, "3 workers")
        time.sleep(0.3)
        assert worker_count() == 3
    finally:
        podman("rm", "--force", "--time", "0", container, check=False)


def test_entrypoint_as_pid_1_without_an_engine_serves_and_stops_on_term() -> None:
    need_root()
    ensure_apt("util-linux")
    port = free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PORT": str(port),  # wsgid's default bind becomes 0.0.0.0:$PORT
        "WSGID_APP": "wsgid.demo:app",
        "WSGID_WORKERS": "2",
    }
    with pid1_entrypoint(env) as proc:
        pid1 = wait_for(lambda: children(proc.pid)[:1], 10, "the namespace's PID 1")[0]
        status, body = wait_for(lambda: answers(port, "/pid1"), 30, "wsgid to answer")
        assert status == 200 and b"GET /pid1" in body
        # The entrypoint exec'd: wsgid's master itself is PID 1, no shell in between.
        assert ns_pid(pid1) == 1
        assert cmdline(pid1).startswith("wsgid: master"), cmdline(pid1)
        begin = time.monotonic()
        os.kill(pid1, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=10)  # reading as it waits: a full pipe can't block
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            pytest.fail("no exit 10 s after TERM:\n" + out.decode(errors="replace"))
        took = time.monotonic() - begin
        assert proc.returncode == 0, out.decode(errors="replace")
        assert took < 2.0, f"took {took:.2f} s to stop"


def test_entrypoint_runs_other_commands_as_given() -> None:
    need_root()
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    with pid1_entrypoint(env, ["sh", "-c", "echo pid=$$"]) as proc:
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and out.decode().strip() == "pid=1"
    with pid1_entrypoint(env, ["--version"]) as proc:
        out, _ = proc.communicate(timeout=30)
    assert out.decode().strip() == f"wsgid {VERSION} (compiled)"


def test_image_with_the_kubernetes_manifest_settings_probes_and_drains(
    podman: Podman, image: str
) -> None:
    """The container of packaging/kubernetes/wsgid.yaml, as the kubelet would run it: its
    environment, a read-only root filesystem, the probes on the side listener. On stop
    (`podman stop`: TERM, as the kubelet sends) /readyz turns 503 while the app still serves
    for WSGID_SHUTDOWN_DELAY, then the container exits 0. Addresses are moved to free
    loopback ports: containers here share the host's network."""
    env = manifest_env()
    port, side = free_port(), free_port()
    env |= {"WSGID_BIND": f"127.0.0.1:{port}", "WSGID_METRICS_BIND": f"127.0.0.1:{side}"}
    delay = float(env["WSGID_SHUTDOWN_DELAY"])
    container = start(podman, image, "--read-only", env=env)
    try:
        wait_for(lambda: answers(side, "/readyz") == (200, b"ready\n"), 30, "/readyz 200")
        assert answers(side, "/livez") == (200, b"ok\n")
        health = podman("healthcheck", "run", container, check=False)
        assert health.returncode == 0, health.stdout + health.stderr
        stopper = threading.Thread(
            target=podman, args=("stop", "--time", str(int(delay) + 30), container)
        )
        begin = time.monotonic()
        stopper.start()
        wait_for(lambda: (answers(side, "/readyz") or (0,))[0] == 503, 10, "/readyz 503")
        status, body = get(port, "/demo")
        assert status == 200 and body.startswith(b"Hello from wsgid"), "serves while draining"
        stopper.join(delay + 40)
        assert time.monotonic() - begin >= delay
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", container).stdout
        logs = podman("logs", container, check=False)
        assert exit_code.strip() == "0", logs.stderr
        assert "master.draining" in logs.stdout + logs.stderr
    finally:
        podman("rm", "--force", "--time", "0", container, check=False)


def manifest_env() -> dict[str, str]:
    """The environment of the wsgid container in packaging/kubernetes/wsgid.yaml."""
    root = Path(__file__).resolve().parents[2]
    documents = yaml.safe_load_all((root / "packaging/kubernetes/wsgid.yaml").read_text())
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"]}
