"""wsgid: a pre-fork WSGI HTTP/1.1 server daemon for UNIX."""

__version__ = "0.1.0"
