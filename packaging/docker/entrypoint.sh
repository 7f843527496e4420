#!/bin/sh
# Container entrypoint of the wsgid image: decides what to run, then `exec`s it, so that wsgid
# is PID 1 and receives the engine's SIGTERM itself (a graceful stop). Nothing else to map:
# wsgid reads PORT and the WSGID_* variables on its own.
#
#   (no arguments)           CMD: wsgid
#   -w 4 --timeout 60 ...    options for wsgid:        wsgid -w 4 --timeout 60 ...
#   check | config ...       wsgid subcommands:        wsgid check ...
#   myapp.wsgi:application   an APP for wsgid:         wsgid myapp.wsgi:application
#   sh, bash, python3, ...   anything else runs as given
set -eu

case "${1:-}" in
    -*)
        set -- wsgid "$@"
        ;;
    check | config)
        set -- wsgid "$@"
        ;;
    *:*)
        # MODULE:CALLABLE, unless it names a command after all.
        command -v "$1" >/dev/null 2>&1 || set -- wsgid "$@"
        ;;
    "")
        set -- wsgid
        ;;
esac

exec "$@"
