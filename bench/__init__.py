"""wsgid's benchmark: `bench/run` drives it; `bench.apps` holds the WSGI apps it serves."""
