"""docs/gunicorn.md maps every gunicorn setting to wsgid's (issue 18, "The settings table").

The lists of gunicorn's setting names are committed in tests/data (taken from
`gunicorn/config.py` at the 20.1.0 and 26.1.0 tags, and of the 27.0.1 release). Every name must
have exactly one row in the page's table; a row's wsgid column is either a wsgid setting in
backticks, which must exist, or something else (`none`, `planned`, `refused`, a flag) with a
reason in its notes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wsgid.settings import SPECS
from wsgid.settings.pyfile import GUNICORN_SETTINGS
from wsgid.settings.specs import GUNICORN_ONLY

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "gunicorn.md"
LISTS = {
    "20.1": REPO / "tests" / "data" / "gunicorn-20.1-settings.txt",
    "26": REPO / "tests" / "data" / "gunicorn-26-settings.txt",
    "27": REPO / "tests" / "data" / "gunicorn-27-settings.txt",
}
_SETTING = re.compile(r"^`([a-z0-9_]+)`$")


def gunicorn_names(version: str) -> list[str]:
    lines = LISTS[version].read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def table() -> dict[str, tuple[str, str]]:
    """gunicorn setting -> (wsgid column, notes), from the page's rows."""
    rows: dict[str, tuple[str, str]] = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        first = _SETTING.match(cells[0]) if line.startswith("| `") else None
        if first is None:
            continue
        assert len(cells) == 3, f"docs/gunicorn.md: not a row of three cells: {line}"
        name = first.group(1)
        assert name not in rows, f"docs/gunicorn.md has two rows for {name}"
        rows[name] = (cells[1], cells[2])
    return rows


@pytest.mark.parametrize("version", sorted(LISTS))
def test_every_gunicorn_setting_has_a_row_in_the_table(version: str) -> None:
    names = gunicorn_names(version)
    assert len(names) == len(set(names)) > 80, f"{LISTS[version]} is not a list of names"
    missing = [name for name in names if name not in table()]
    assert not missing, f"docs/gunicorn.md has no row for gunicorn {version}'s {missing}"


def test_the_table_names_only_wsgid_settings_that_exist() -> None:
    named = {}
    for gunicorn, (wsgid, _notes) in table().items():
        match = _SETTING.match(wsgid)
        if match is not None:
            named[gunicorn] = match.group(1)
    unknown = {g: w for g, w in named.items() if w not in SPECS}
    assert not unknown, f"docs/gunicorn.md names settings wsgid does not have: {unknown}"
    assert len(named) > 60, "the table lost its wsgid column"


def test_a_gunicorn_setting_without_a_wsgid_setting_says_why() -> None:
    unexplained = [
        gunicorn
        for gunicorn, (wsgid, notes) in table().items()
        if _SETTING.match(wsgid) is None and not notes
    ]
    assert not unexplained, f"rows without a wsgid setting or a reason: {unexplained}"


def test_a_wsgid_setting_of_a_gunicorn_name_has_a_row_under_that_name() -> None:
    """The other way round: where wsgid took gunicorn's name, the page says so."""
    names = {name for version in LISTS for name in gunicorn_names(version)}
    rows = table()
    wrong = {
        name: rows[name][0] for name in SPECS if name in names and rows[name][0] != f"`{name}`"
    }
    assert not wrong, f"rows that do not map a setting to itself: {wrong}"


def test_the_python_config_reader_knows_every_gunicorn_setting_of_the_lists() -> None:
    """A gunicorn config file's setting wsgid lacks is warned about, not taken for a typo:
    the reader's own list (it cannot read tests/data) holds every name of both lists."""
    listed = {name for version in LISTS for name in gunicorn_names(version)}
    assert not listed - GUNICORN_SETTINGS, sorted(listed - GUNICORN_SETTINGS)


def test_every_gunicorn_setting_the_reader_knows_has_a_row() -> None:
    """The reader's list has names neither committed list holds (gunicorn 22.0's
    tolerate_dangerous_framing); the page must explain those too."""
    missing = sorted(GUNICORN_SETTINGS - set(table()))
    assert not missing, f"docs/gunicorn.md has no row for {missing}"


def test_gunicorn_only_settings_are_the_rows_without_a_wsgid_setting() -> None:
    """The short reasons the errors give (`GUNICORN_ONLY`) are for the rows the page explains."""
    rows = table()
    named = [name for name in GUNICORN_ONLY if _SETTING.match(rows[name][0]) is not None]
    assert not named, f"GUNICORN_ONLY holds settings the page maps to a wsgid setting: {named}"
