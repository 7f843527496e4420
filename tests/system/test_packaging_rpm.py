"""The RPM: it builds on this Debian machine, holds the .deb's payload, and rpmlint is clean.

Built once per session by packaging/build-rpm.sh (stand-in macros for those Debian's rpm
lacks). Installing it under a real systemd is in test_packaging_systemd.py.
"""

from __future__ import annotations

import gzip
import re
import subprocess
from pathlib import Path

import pytest

from system.packaging_support import (
    ARTIFACTS,
    PACKAGING,
    VERSION,
    check_man_page_files,
    deb_paths,
    ensure_apt,
    python_minor,
    run,
)

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def rpm(request: pytest.FixtureRequest) -> Path:
    return ARTIFACTS.rpm(request.config)


def payload_files(paths_and_modes: list[tuple[str, str]]) -> set[str]:
    """Non-directory paths, normalised to compare the two formats.

    Debian's units live in /lib/systemd/system (usrmerge makes it /usr/lib), RPM's in
    /usr/lib/systemd/system; each format keeps its own documentation and license files
    (/usr/share/doc, /usr/share/licenses) and the .deb its lintian overrides; the RPM ships
    the byte-code, which the .deb compiles at installation.
    """
    files = set()
    for path, mode in paths_and_modes:
        if mode.startswith("d"):
            continue
        if path.startswith(("/usr/share/doc/", "/usr/share/licenses/", "/usr/share/lintian/")):
            continue
        if "/__pycache__/" in path:
            continue
        files.add(re.sub(r"^/lib/systemd/", "/usr/lib/systemd/", path))
    return files


def rpm_listing(rpm: Path) -> list[tuple[str, str]]:
    out = run(["rpm", "-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES}\\n]", str(rpm)]).stdout
    return [(line.split(" ", 1)[1], line.split(" ", 1)[0]) for line in out.splitlines()]


def deb_listing(deb: Path) -> list[tuple[str, str]]:
    out = run(["dpkg-deb", "-c", str(deb)]).stdout
    modes = [line.split()[0] for line in out.splitlines()]
    return list(zip(deb_paths(deb), modes, strict=True))


def test_rpm_builds_for_this_architecture(rpm: Path) -> None:
    info = run(["rpm", "-qp", "--qf", "%{NAME} %{VERSION} %{ARCH}", str(rpm)]).stdout.split()
    assert info[:2] == ["wsgid", VERSION]
    assert info[2] not in ("noarch", ""), info  # compiled wheels inside


def test_rpm_lists_the_same_payload_as_the_deb(rpm: Path, request: pytest.FixtureRequest) -> None:
    deb = ARTIFACTS.deb(request.config)
    rpm_files = payload_files(rpm_listing(rpm))
    deb_files = payload_files(deb_listing(deb))
    assert rpm_files == deb_files, (
        f"only in the rpm: {sorted(rpm_files - deb_files)}\n"
        f"only in the deb: {sorted(deb_files - rpm_files)}"
    )
    listed = run(["rpm", "-qlp", str(rpm)]).stdout.split()
    assert "/var/log/wsgid" in listed and "/etc/wsgid" in listed
    # The RPM ships byte-code compiled for the system Python (the .deb compiles it in postinst).
    tag = python_minor().replace(".", "")
    assert any(p.endswith(f"/wsgid/__pycache__/cli.cpython-{tag}.pyc") for p in listed)


def test_rpm_metadata_scriptlets_and_dependencies(rpm: Path) -> None:
    requires = run(["rpm", "-qp", "--requires", str(rpm)]).stdout
    assert f"python(abi) = {python_minor()}" in requires
    assert "pydantic" not in requires  # bundled, not required from the system
    provides = run(["rpm", "-qp", "--provides", str(rpm)]).stdout
    assert "bundled(python3dist(pydantic))" in provides
    assert ".so" not in provides  # the private environment provides nothing to the system
    scripts = run(["rpm", "-qp", "--scripts", str(rpm)]).stdout
    assert "systemd-sysusers" in scripts  # %pre: the wsgid user
    assert "preset wsgid.socket" in scripts  # %systemd_post
    assert "disable --now wsgid.socket wsgid.service" in scripts  # %systemd_preun
    assert "try-restart wsgid.service" in scripts  # %systemd_postun_with_restart
    configs = run(["rpm", "-qp", "--configfiles", str(rpm)]).stdout.split()
    assert sorted(configs) == ["/etc/logrotate.d/wsgid", "/etc/wsgid/app.toml"]


def test_rpmlint_is_clean_apart_from_the_documented_filters(rpm: Path) -> None:
    ensure_apt("rpmlint")
    result = run(
        ["rpmlint", "-c", str(PACKAGING / "rpm/rpmlint.toml"),
         "-r", str(PACKAGING / "rpm/wsgid.rpmlintrc"), str(rpm)],
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors, 0 warnings" in result.stdout, result.stdout


def test_man_page_files_section_lists_what_the_rpm_installs(rpm: Path) -> None:
    """The same page as the .deb's, with the RPM's unit directory (/usr/lib/systemd/system)."""
    page = subprocess.run(
        ["sh", "-c", 'rpm2cpio "$1" | cpio -i --quiet --to-stdout ./usr/share/man/man1/wsgid.1.gz',
         "sh", str(rpm)],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    check_man_page_files(gzip.decompress(page).decode(), rpm_listing(rpm))
