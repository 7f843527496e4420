"""The shipped unit files lint clean and are hardened, checked with systemd's own tools offline.

`systemd-analyze verify` refuses a unit whose ExecStart binary is missing, and wsgid is not
installed in /usr/bin here. So it runs with `--root` pointing at a throw-away overlay of `/`
(tmpfs upper layer, in a private mount namespace: nothing is mounted on the host) in which
/usr/bin/wsgid exists and the units sit in /etc/systemd/system.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from system.sysd_support import need_root, need_tool
from wsgid.exitcodes import WORKER_ONLY, ExitCode

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
SYSTEMD_MD = REPO / "docs" / "systemd.md"
RUNNING_MD = REPO / "docs" / "running.md"
SHIPPED = ["wsgid.service", "wsgid.socket", "wsgid@.service", "wsgid@.socket"]
# What verify is asked to check: templates are checked through an instance.
CHECKED = ["wsgid.service", "wsgid.socket", "wsgid@demo.service", "wsgid@demo.socket"]

OVERLAY_VERIFY = r"""
set -eu
T=$1; shift
mount --make-rprivate /
mkdir -p "$T/lower" "$T/ovl" "$T/root"
mount --bind / "$T/lower"
mount -t tmpfs tmpfs "$T/ovl"
mkdir -p "$T/ovl/upper" "$T/ovl/work"
mount -t overlay overlay \
    -o "lowerdir=$T/lower,upperdir=$T/ovl/upper,workdir=$T/ovl/work" "$T/root"
install -m 755 /dev/null "$T/root/usr/bin/wsgid"
cp "$T"/units/* "$T/root/etc/systemd/system/"
cd "$T/root/etc/systemd/system"
exec systemd-analyze verify --man=no --root="$T/root" "$@"
"""


def verify(units_dir: Path, names: list[str], work: Path) -> subprocess.CompletedProcess[str]:
    need_root()
    need_tool("systemd-analyze")
    unshare = need_tool("unshare")
    shutil.copytree(units_dir, work / "units")
    script = work / "verify.sh"
    script.write_text(OVERLAY_VERIFY)
    return subprocess.run(
        [unshare, "--mount", "sh", str(script), str(work), *names],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_shipped_unit_file_exists() -> None:
    for name in [*SHIPPED, "wsgid.sysusers.conf", "wsgid.tmpfiles.conf"]:
        assert (UNITS / name).is_file(), name


def test_systemd_analyze_verify_prints_nothing_for_every_unit(tmp_path: Path) -> None:
    units = tmp_path / "src"
    units.mkdir()
    for name in SHIPPED:
        shutil.copy(UNITS / name, units / name)
    result = verify(units, CHECKED, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""


def test_verify_in_the_overlay_does_report_a_broken_unit(tmp_path: Path) -> None:
    """The check above is not vacuous: the same set-up reports a misspelt key."""
    units = tmp_path / "src"
    units.mkdir()
    text = (UNITS / "wsgid.service").read_text().replace("KillMode=", "KilMode=")
    (units / "wsgid.service").write_text(text)
    shutil.copy(UNITS / "wsgid.socket", units / "wsgid.socket")
    result = verify(units, ["wsgid.service"], tmp_path)
    assert "KilMode" in result.stdout + result.stderr


def exposure(unit: Path) -> float:
    tool = need_tool("systemd-analyze")
    result = subprocess.run(
        [tool, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match.group(1))


def test_wsgid_service_exposure_is_at_most_2(tmp_path: Path) -> None:
    score = exposure(UNITS / "wsgid.service")
    assert score <= 2.0, score


def test_socket_activated_template_exposure_is_at_most_1(tmp_path: Path) -> None:
    instance = tmp_path / "wsgid@demo.service"
    shutil.copy(UNITS / "wsgid@.service", instance)
    score = exposure(instance)
    assert score <= 1.0, score


def systemd_major() -> int:
    out = subprocess.run(
        [need_tool("systemctl"), "--version"], capture_output=True, text=True, timeout=60
    ).stdout
    return int(out.split()[1])


def test_the_exposure_scores_the_docs_and_units_state_are_systemd_analyzes(
    tmp_path: Path,
) -> None:
    """docs/systemd.md and each unit's comment give the score `systemd-analyze security`
    computes, for the systemd version the page names (its scoring changes between versions)."""
    text = SYSTEMD_MD.read_text()
    stated = re.search(
        r"Scores from `systemd-analyze security`(?: of systemd (\d+))?[^:]*:\s*"
        r"`wsgid.service` \*\*(\d\.\d)\*\*,\s*`wsgid@NAME.service` \*\*(\d\.\d)\*\*",
        text,
    )
    assert stated, "docs/systemd.md no longer states the scores where this test looks"
    version, service, template = stated[1], stated[2], stated[3]
    instance = tmp_path / "wsgid@demo.service"
    shutil.copy(UNITS / "wsgid@.service", instance)
    for unit, score in (("wsgid.service", service), ("wsgid@.service", template)):
        comment = re.search(
            r"^# Hardening: .* scores this (\d\.\d)\.$", (UNITS / unit).read_text(), re.M
        )
        assert comment and comment[1] == score, f"{unit}'s comment: {comment and comment[0]}"
    if version is not None and systemd_major() != int(version):
        pytest.skip(f"the scores are systemd {version}'s; this is systemd {systemd_major()}")
    assert f"{exposure(UNITS / 'wsgid.service'):.1f}" == service
    assert f"{exposure(instance):.1f}" == template


def test_the_exit_code_table_says_how_systemctl_status_shows_each_code() -> None:
    """docs/running.md's last column is systemd's name for each status: `4/NOPERMISSION`."""
    tool = need_tool("systemd-analyze")
    table = RUNNING_MD.read_text().split("## Exit codes", 1)[1].split("\n\n", 2)[1]
    rows = dict(re.findall(r"^\| (\d+) \|.*\| `(\d+/[A-Z_]+)` \|$", table, re.M))
    assert {int(c) for c in rows} == {int(c) for c in ExitCode if c not in WORKER_ONLY}, table
    for code, shown in rows.items():
        out = subprocess.run(
            [tool, "exit-status", code], capture_output=True, text=True, timeout=60
        ).stdout
        name = out.splitlines()[1].split()[0]  # under the NAME STATUS CLASS header
        assert shown == f"{code}/{name}", (shown, out)


@pytest.mark.parametrize("name", ["wsgid.service", "wsgid@.service"])
def test_units_keep_the_settings_the_upgrade_and_the_stop_rely_on(name: str) -> None:
    text = (UNITS / name).read_text()
    for line in (
        "Type=notify",
        "NotifyAccess=all",  # the USR2 master is not systemd's child: MAINPID= must be believed
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillMode=mixed",
        "TimeoutStopSec=35",  # graceful_timeout 30 s + margin
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
    ):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), f"{name}: {line}"
    assert re.search(r"^WatchdogSec=\d+$", text, re.M)
    assert re.search(r"^ExecStart=/usr/bin/wsgid --config /etc/wsgid/(app|%i)\.toml$", text, re.M)


def test_sockets_name_their_descriptor_for_bind_systemd_web() -> None:
    for name in ("wsgid.socket", "wsgid@.socket"):
        assert "\nFileDescriptorName=web\n" in (UNITS / name).read_text(), name


def test_sysusers_and_tmpfiles_snippets_apply_to_an_empty_root(tmp_path: Path) -> None:
    sysusers = need_tool("systemd-sysusers")
    tmpfiles = need_tool("systemd-tmpfiles")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    done = subprocess.run(
        [sysusers, f"--root={root}", str(UNITS / "wsgid.sysusers.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"^wsgid:x:\d+:\d+:", (root / "etc/passwd").read_text(), re.M)
    done = subprocess.run(
        [tmpfiles, f"--root={root}", "--create", str(UNITS / "wsgid.tmpfiles.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert (root / "run/wsgid").is_dir() and (root / "var/lib/wsgid").is_dir()
