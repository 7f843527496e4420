"""wsgid: a pre-fork WSGI HTTP/1.1 server daemon for UNIX."""

__version__ = "0.1.0"


def build() -> str:
    """How this installation runs its per-request modules: "compiled" or "pure Python".

    The compiled build (mypyc, see setup.py) runs the same source faster; a
    machine without a C compiler installs the pure-Python one. Answered from
    where the loop module would be imported from, without importing it.
    """
    from importlib.util import find_spec

    spec = find_spec("wsgid.workers.loop")
    origin = spec.origin if spec is not None else None
    return "pure Python" if origin is None or origin.endswith(".py") else "compiled"
