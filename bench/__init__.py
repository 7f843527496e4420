"""wsgid's benchmark: `bench/run` drives it (`bench.runner`); `bench.apps` holds the apps it serves.

`bench/breakdown.py` times the sync worker's own code per request, without sockets.
"""
