"""HTTP/1.1 for wsgid: bytes in, PEP 3333 calls, bytes out.

Nothing in this package knows about processes, signals or event loops; the
workers join it to sockets. See each module's docstring for what it owns.
"""
