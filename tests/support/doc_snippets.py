"""The configuration blocks the docs mark for the tests, so that the tests run what users copy.

A page marks a fenced block by the line just above its fence:

    <!-- snippet: NAME -->
    ```ini
    ...
    ```

`snippets(doc)` returns every marked block of a page by name (a name used twice is an error),
`snippet(doc, name)` one of them, failing with the page's name if it has no such block.
"""

from __future__ import annotations

import re
from pathlib import Path

_SNIPPET = re.compile(r"^<!-- snippet: ([\w-]+) -->\n```\w*\n(.*?)^```$", re.M | re.S)


def snippets(doc: Path) -> dict[str, str]:
    """Every marked block of the page `doc`, by name."""
    found: dict[str, str] = {}
    for name, text in _SNIPPET.findall(doc.read_text("utf-8")):
        assert name not in found, f"two blocks named {name!r} in {doc.name}"
        found[name] = text
    return found


def snippet(doc: Path, name: str) -> str:
    """The block of the page `doc` marked `<!-- snippet: NAME -->`."""
    blocks = snippets(doc)
    assert name in blocks, f"no block marked `<!-- snippet: {name} -->` in {doc.name}"
    return blocks[name]
