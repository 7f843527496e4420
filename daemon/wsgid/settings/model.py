"""`Settings`: the one model of every wsgid option.

What this module owns: each setting's flat name (gunicorn's name wherever gunicorn has the
setting), type, default, validation and help text, and in its `Annotated` metadata the
`Option` that says where it lives in the file and which flags set it. The command-line
parser, `--help`, the documentation reference and the JSON Schema of the file are all
generated from these fields and are never written a second time.

Adding a setting means adding one annotated field below, with its description as the
docstring under it (then `scripts/gen-schema` to refresh the committed schema, docs and
typed fields, `wsgid/runtime_fields.py`, and the table the loader validates with,
`wsgid/settings/table.py`). Checks that involve several fields belong in
`fields.check_combined`, which the model runs on the merged result only. Every function a field
runs is a plain function of `wsgid.settings.fields`: the generated table calls them by name.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from wsgid.access_formats import GUNICORN_FORMAT
from wsgid.runtime import MAX_WORKERS
from wsgid.settings.annotated import (
    AllowEntry,
    BindAddress,
    CertReqs,
    Count,
    EnvAssignment,
    ForwarderHeader,
    HeaderMap,
    HeaderName,
    Hook,
    IdName,
    LogFormat,
    LogLevel,
    MemoryMetric,
    NonEmptyStr,
    Positive,
    ProxyProtocol,
    ReloadEngine,
    RemoteAddrFrom,
    Seconds,
    StatsdNaming,
    SyslogFacility,
    SyslogFraming,
    TlsVersion,
    WorkerClass,
)
from wsgid.settings.fields import (
    ACCESS_FORMATS_ACCEPTED,
    ALLOW_ACCEPTED,
    BIND_ACCEPTED,
    CONTROL_SOCKET_ACCEPTED,
    HEADER_NAME_ACCEPTED,
    LOG_TARGETS_ACCEPTED,
    LOGGER_CLASS_ACCEPTED,
    MANAGED_DIR_ACCEPTED,
    MAX_SECONDS,
    STATSD_ACCEPTED,
    WORKER_CLASS_HELP,
    Option,
    check_access_log_format,
    check_combined,
    check_directory,
    check_log_target,
    check_logger_class,
    check_managed_dir,
    check_scheme_headers,
    check_statsd_host,
    check_syslog_addr,
    class_path,
    int_to_str,
    json_table,
    no_nul,
    parse_mode,
    parse_umask,
    paste_globals,
    paste_uri,
    strip,
)
from wsgid.workers import ACCEPTED as WORKER_CLASS_ACCEPTED


class Settings(BaseModel):
    """Every wsgid setting. Immutable once built; unknown keys are rejected."""

    # Each setting's description is the docstring under it (one-line help: its first
    # sentence), read from this file's source when first needed and with whitespace
    # collapsed (`tablegen.attribute_docstrings`, when `table.py` is rendered).
    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- general / application ------------------------------------------------------------
    app: Annotated[
        NonEmptyStr | None,
        BeforeValidator(strip),
        Option("application", (), positional=True, metavar="APP", accepts="MODULE:CALLABLE"),
    ] = None
    """The WSGI application to serve, as an import string MODULE:CALLABLE. Also accepted:
    MODULE:ATTR.SUB, MODULE:factory() or MODULE:factory(ARGS) with literal arguments, and MODULE
    alone, which looks for `application`, then `app`."""
    paste: Annotated[
        NonEmptyStr | None,
        AfterValidator(paste_uri),
        Option(
            "application",
            ("--paste", "--paster"),
            metavar="FILE[#NAME]",
            accepts="a Paste Deploy ini file, as FILE.ini or FILE.ini#NAME",
        ),
    ] = None
    """Serve the application of a Paste Deploy ini file (Pyramid, TurboGears) instead of app:
    FILE.ini loads its main application, FILE.ini#NAME the section NAME. Needs the PasteDeploy
    package. A [loggers] section in the file configures stdlib logging unless logconfig is set.
    A relative path is resolved against the directory wsgid is started in."""
    raw_paste_global_conf: Annotated[
        dict[str, str],
        BeforeValidator(paste_globals),
        Option(
            "application",
            ("--paste-global",),
            metavar="KEY=VALUE",
            repeatable=True,
            accepts="a table of name = value (KEY=VALUE on the command line; a JSON object or"
            " comma-separated KEY=VALUE in WSGID_RAW_PASTE_GLOBAL_CONF)",
        ),
    ] = Field(default_factory=dict)
    """Global variables for the paste file: usable as %(KEY)s in it, and handed to the
    application factory as its global_config. A table in the file; on the command line
    `--paste-global KEY=VALUE`, repeated (gunicorn's flag)."""
    config: Annotated[
        NonEmptyStr | None,
        Option(
            "general",
            ("-c", "--config"),
            metavar="PATH",
            in_file=False,
            accepts="a file path, or python:MODULE",
        ),
    ] = None
    """The configuration file to read: TOML, or a gunicorn Python file (a path ending in .py, or
    python:MODULE), run as gunicorn runs it. Relative paths are resolved against the working
    directory at startup, so a reload (HUP) re-reads the same file. Can only be given on the command
    line, as WSGID_CONFIG or in GUNICORN_CMD_ARGS."""
    preload_app: Annotated[bool, Option("application", ("--preload",))] = False
    """Load the application in the master before forking workers. Saves memory and start-up time;
    the application is then not reloaded on HUP."""
    chdir: Annotated[
        NonEmptyStr | None,
        AfterValidator(check_directory),
        Option("application", metavar="DIR", accepts="an existing directory"),
    ] = None
    """Change to this directory before loading the application."""
    pythonpath: Annotated[
        tuple[NonEmptyStr, ...],
        Option(
            "application",
            metavar="PATHS",
            repeatable=True,
            comma_separated=True,
            accepts="a list of directories",
        ),
    ] = ()
    """Directories to add to the front of the Python path before loading the application.
    Comma-separated in a single string, as in gunicorn."""
    raw_env: Annotated[
        tuple[EnvAssignment, ...],
        Option(
            "application",
            ("-e", "--env"),
            metavar="KEY=VALUE",
            repeatable=True,
            accepts="a list of KEY=VALUE strings",
        ),
    ] = ()
    """Environment variables to set in the server's environment, as KEY=VALUE. Repeat the flag for
    several; in WSGID_RAW_ENV they are comma-separated, so a value containing a comma must come from
    the file or a flag."""
    reload: Annotated[bool, Option("application", ("--reload",))] = False
    """Development: when the application's code changes, reload as on HUP (new workers, the old
    ones finish their requests). The master watches the module files the workers imported and
    reload_extra_files; a change that does not import keeps the old workers serving. Not with
    preload_app (see docs/running.md)."""
    reload_engine: Annotated[
        ReloadEngine, Option("application", metavar="ENGINE", accepts="auto, inotify or poll")
    ] = "auto"
    """How reload watches: `inotify` (the kernel tells, at once), `poll` (every watched file is
    looked at once a second), or `auto`: inotify where the kernel has it, else poll."""
    reload_extra_files: Annotated[
        tuple[NonEmptyStr, ...],
        Option(
            "application",
            ("--reload-extra-file",),
            metavar="PATH",
            repeatable=True,
            accepts="a list of file paths or globs (** for any depth)",
        ),
    ] = ()
    """More files whose change reloads, besides the application's modules (templates, data):
    paths or globs, expanded again on every check so that a file created later counts; relative
    ones are taken from the directory wsgid started in. Repeat the flag for several."""

    # --- server socket --------------------------------------------------------------------
    bind: Annotated[
        tuple[BindAddress, ...],
        Field(min_length=1),
        Option(
            "server",
            ("-b", "--bind"),
            metavar="ADDRESS",
            repeatable=True,
            comma_separated=True,
            accepts=BIND_ACCEPTED,
            default_doc="127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set",
        ),
    ] = ("127.0.0.1:8000",)
    """The sockets to listen on. Repeat the flag to listen on several; in WSGID_BIND they are
    comma-separated."""
    backlog: Annotated[Positive, Option("server", metavar="INT")] = Field(
        default=2048,
        le=2**31 - 1,  # listen(2) takes an int; the kernel caps it at somaxconn
    )
    """The maximum number of pending connections the kernel queues per socket."""
    reuse_port: Annotated[bool, Option("server")] = False
    """Set SO_REUSEPORT on the TCP listeners wsgid binds, so that another process (a second
    wsgid, say, started before this one is stopped) can bind the same address and the kernel
    shares the connections between them. Both must set it and run as the same user. Sockets
    passed in (fd://N, systemd) keep the options they were created with."""

    # --- worker processes -----------------------------------------------------------------
    workers: Annotated[
        Positive,
        Option("workers", ("-w", "--workers"), metavar="INT", default_doc="$WEB_CONCURRENCY, or 1"),
    ] = Field(  # a description that names a constant is written out, not as a docstring
        default=1,
        le=MAX_WORKERS,
        description=(
            "The number of worker processes. A common start is 2-4 per CPU core; measure "
            f"your own application. At most {MAX_WORKERS}, the most one master supervises "
            "(TTIN stops there too)."
        ),
    )
    worker_class: Annotated[
        WorkerClass,
        Option("workers", ("-k", "--worker-class"), metavar="CLASS", accepts=WORKER_CLASS_ACCEPTED),
    ] = Field(default="sync", description=WORKER_CLASS_HELP)  # written from the registry
    threads: Annotated[Positive, Option("workers", metavar="INT")] = 1
    """The number of threads per worker (gthread worker)."""
    worker_connections: Annotated[Positive, Option("workers", metavar="INT")] = 1000
    """The maximum number of simultaneous clients per worker, across its listeners (for gevent,
    also of its requests at once). At the cap, the connection idle the longest makes room for a
    new client."""
    timeout: Annotated[Seconds, Option("workers", ("-t", "--timeout"), metavar="SECONDS")] = 30.0
    """A worker silent for more than this many seconds is killed and restarted. It also bounds
    each request where requests share a thread or a small pool: sync (the worker is killed) and
    gthread (the request is answered 503), unless request_timeout is set. 0 disables the check."""
    request_timeout: Annotated[Seconds, Option("workers", metavar="SECONDS")] = 0.0
    """The longest a request may run before the worker ends it, answers it 503 (or cuts its
    connection if part of the response went out) and logs it with its stack: on gevent,
    eventlet and tornado (each request), and gthread (instead of timeout). 0, the default,
    leaves requests of the cooperative kinds unbounded, as under gunicorn, so that long polls
    and server-sent event streams live as long as their clients; gthread then uses timeout. A
    sync worker's request is bounded by timeout alone (set with sync, this is a warning)."""
    graceful_timeout: Annotated[Seconds, Option("workers", metavar="SECONDS")] = 30.0
    """On a graceful stop or restart, how long in-flight requests may take to finish before their
    workers are killed."""
    keepalive: Annotated[Seconds, Option("workers", ("--keep-alive",), metavar="SECONDS")] = 2.0
    """How long an idle keep-alive connection is held open waiting for the next request. 0 closes
    the connection after each response."""
    header_timeout: Annotated[float, Option("workers", metavar="SECONDS")] = Field(
        default=30.0, gt=0, le=MAX_SECONDS, allow_inf_nan=False
    )
    """Seconds a client has to send a complete request head, counted from its first byte, and then a
    body of up to small_body_size (read before the app is called), counted from the end of the head;
    a slower client gets 408 and the connection is closed. Idle or slow clients never hold the
    application."""
    max_requests: Annotated[Count, Option("workers", metavar="INT")] = 0
    """Restart a worker after it has served this many requests, a guard against memory leaks. 0
    disables."""
    max_requests_jitter: Annotated[Count, Option("workers", metavar="INT")] = 0
    """Add a random 0..N to max_requests per worker, so that workers do not all restart at once."""
    max_worker_memory: Annotated[Count, Option("workers", metavar="MIB")] = 0
    """Recycle a worker whose memory has grown past this many MiB: the master measures each
    worker once a second (see max_worker_memory_metric) and retires one over the limit
    gracefully, as on HUP: it stops accepting, finishes the requests in flight and exits,
    while a new worker takes its place. A worker already over the limit when it booted is
    reported once and kept, so that a limit set too low cannot make workers restart in a
    loop. 0 disables. Unlike max_requests, it recycles only the workers that leak, when they
    leak (see docs/signals.md)."""
    max_worker_memory_metric: Annotated[MemoryMetric, Option("workers")] = "rss"
    """What max_worker_memory measures: rss, the worker's resident memory, shared pages counted
    in full (what ps and top show); or pss, its proportional share, each shared page divided
    among the processes that map it. With preload_app the workers share the application's
    pages with the master, which rss counts in every worker and pss does not. Reading pss
    costs the master more (the kernel walks the worker's page tables)."""
    sendfile: Annotated[bool, Option("workers")] = True
    """Send wsgi.file_wrapper bodies of regular files with sendfile(2), without copying them
    through Python. --no-sendfile reads and sends them in blocks instead: for files on a
    filesystem where sendfile misbehaves (some network and virtual-machine shared folders)."""
    worker_tmp_dir: Annotated[NonEmptyStr | None, Option("workers", metavar="DIR")] = None
    """Accepted for gunicorn compatibility; it has no effect. gunicorn's workers signal that
    they are alive through a temporary file in this directory; wsgid's heartbeat is a table
    in shared memory, which needs no file."""
    tmp_upload_dir: Annotated[NonEmptyStr | None, Option("workers", metavar="DIR")] = None
    """Accepted for gunicorn compatibility; it has no effect. gunicorn never reads it either;
    wsgid writes no temporary files for request bodies: up to small_body_size they are held
    in memory, larger ones stream through wsgi.input."""

    # --- request limits -------------------------------------------------------------------
    limit_request_line: Annotated[Count, Option("limits", metavar="BYTES")] = 4094
    """The maximum size of the request line (method, target and version), in bytes. 0 means
    unlimited."""
    limit_request_fields: Annotated[Count, Option("limits", metavar="INT")] = Field(
        default=100, le=32768
    )
    """The maximum number of header fields in a request. 0 means the ceiling, 32768, as in
    gunicorn."""
    limit_request_field_size: Annotated[
        Count,
        # gunicorn really spells this flag with an underscore; the dashed form is what
        # everyone types, so both are accepted.
        Option(
            "limits",
            ("--limit-request-field_size", "--limit-request-field-size"),
            metavar="BYTES",
        ),
    ] = 8190
    """The maximum size of one request header field, in bytes. 0 means unlimited."""
    limit_request_body: Annotated[Count, Option("limits", metavar="BYTES")] = 0
    """The largest request body accepted, in bytes; a larger one is refused with 413 before the
    application runs (or, for a chunked body found too large while the application reads it,
    wsgi.input raises). 0 means no limit."""
    small_body_size: Annotated[Count, Option("limits", metavar="BYTES")] = 65536
    """Request bodies up to this size (chunked ones included) are read completely before the
    application is called, so a slow client never holds it and a framing error is refused with 400
    before it runs. Larger bodies stream through wsgi.input."""
    header_map: Annotated[HeaderMap, Option("limits", metavar="MODE")] = "drop"
    """What to do with request header names containing an underscore, which would collide with
    dashed names in the environ (X_Forwarded_For posing as X-Forwarded-For): drop them, refuse the
    request with 400, or (dangerous) map them like dashed names. gunicorn's setting of the same
    name."""

    # --- behind a proxy -------------------------------------------------------------------
    proxy_protocol: Annotated[
        ProxyProtocol,
        Option("proxy", metavar="MODE", bare="auto", accepts="off, v1, v2 or auto"),
    ] = "off"
    """Require a PROXY protocol header (HAProxy's; nginx stream's `proxy_protocol on`) at the
    start of each connection, before any HTTP: `v1`, `v2`, or `auto` (either). The client
    address it carries becomes REMOTE_ADDR for every request of the connection. A connection
    without one is refused (400), as the protocol requires, unless proxy_protocol_optional.
    The flag alone means auto, as in gunicorn."""
    proxy_protocol_binds: Annotated[
        tuple[BindAddress, ...],
        Option(
            "proxy",
            metavar="ADDRESS",
            repeatable=True,
            comma_separated=True,
            accepts="bind entries, as written in bind",
        ),
    ] = ()
    """The listeners that require the PROXY header, as written in bind; empty means every
    listener. Lets a PROXY port for the load balancer and a plain port (for health checks, or
    a sidecar) coexist."""
    proxy_protocol_optional: Annotated[bool, Option("proxy")] = False
    """Serve a connection without a PROXY header as plain HTTP, as gunicorn does. Unsafe: a
    client that can reach the port directly can then send a header of its own choosing unless
    proxy_allow_ips keeps it out."""
    proxy_allow_ips: Annotated[
        tuple[AllowEntry, ...],
        Option(
            "proxy",
            ("--proxy-allow-from",),
            metavar="ADDRESSES",
            comma_separated=True,
            accepts=ALLOW_ACCEPTED,
        ),
    ] = ("127.0.0.1", "::1")
    """The peers allowed to send a PROXY header: IP addresses and CIDR networks, or * for
    anyone. A connection from any other peer on a PROXY listener is refused (403). UNIX-socket
    peers are always allowed."""
    forwarded_allow_ips: Annotated[
        tuple[AllowEntry, ...],
        Option(
            "proxy",
            metavar="ADDRESSES",
            comma_separated=True,
            accepts=ALLOW_ACCEPTED,
            default_doc="$FORWARDED_ALLOW_IPS, or 127.0.0.1,::1",
        ),
    ] = ("127.0.0.1", "::1")
    """The peers whose forwarded headers are believed (secure_scheme_headers,
    forwarder_headers, remote_addr_from, request_id_header): IP addresses and CIDR networks,
    or * for anyone. Judged on the TCP peer, never on an address a header claims. UNIX-socket
    peers are always trusted."""
    secure_scheme_headers: Annotated[
        dict[str, str],
        BeforeValidator(json_table),
        AfterValidator(check_scheme_headers),
        Option(
            "proxy",
            metavar="JSON",
            accepts="a table of header name = the value that means https (JSON on the command"
            " line and in WSGID_SECURE_SCHEME_HEADERS)",
        ),
    ] = Field(
        default_factory=lambda: {
            "X-FORWARDED-PROTOCOL": "ssl",
            "X-FORWARDED-PROTO": "https",
            "X-FORWARDED-SSL": "on",
        }
    )
    """Headers a trusted proxy sets to say the client used HTTPS, and the value that says so
    (compared exactly): wsgi.url_scheme is https when a present one has its value, http when
    it has another; two that disagree are refused with 400. Trailers never count. gunicorn's
    setting and default."""
    forwarder_headers: Annotated[
        tuple[ForwarderHeader, ...],
        Option("proxy", metavar="NAMES", comma_separated=True),
    ] = ("SCRIPT_NAME",)
    """Environ keys a trusted proxy may set through a header of the same name (SCRIPT_NAME,
    PATH_INFO, REMOTE_USER). From any other peer such a header never reaches the environ.
    PATH_INFO is not in the default: it would route the request wherever the header says, past
    the proxy's rules on the path, from any client of a proxy that passes headers with `_`
    (HAProxy, Envoy); gunicorn lists it too but routes by the request's path."""
    clear_untrusted_forwarded_headers: Annotated[bool, Option("proxy")] = True
    """Remove the forwarded headers (X-Forwarded-*, Forwarded, X-Real-IP and the
    secure_scheme_headers) of a peer not on forwarded_allow_ips from the environ, so an
    application that reads them itself cannot be fooled by a client."""
    remote_addr_from: Annotated[RemoteAddrFrom, Option("proxy", metavar="SOURCE")] = "peer"
    """Where REMOTE_ADDR comes from: `peer` (the TCP peer, or the PROXY header's client), or,
    from a trusted proxy, `x-forwarded-for` or `forwarded` (RFC 7239): the rightmost hop that
    is not on forwarded_allow_ips, never the client-written leftmost. The TCP peer stays in
    wsgid.peer_addr."""
    request_id_header: Annotated[
        HeaderName, Option("proxy", metavar="NAME", accepts=HEADER_NAME_ACCEPTED)
    ] = "X-Request-ID"
    """The request header whose value a trusted proxy's request id arrives in; it becomes the
    request's id (environ wsgid.request_id, the logs). From any other peer it is an ordinary
    header and a fresh id is made. Empty: always make a fresh id."""
    request_id_response_header: Annotated[
        HeaderName, Option("proxy", metavar="NAME", accepts=HEADER_NAME_ACCEPTED)
    ] = ""
    """A response header to carry the request id in (X-Request-ID, say), unless the
    application sets it. Empty, the default: wsgid adds nothing to a response the application
    did not ask for; proxies usually add their own."""

    # --- TLS ------------------------------------------------------------------------------
    certfile: Annotated[NonEmptyStr | None, Option("tls", metavar="FILE")] = None
    """The server's certificate in PEM, followed by its chain if any. Setting it serves HTTPS
    on the listeners of tls_binds (every listener when that is empty). The master reads the
    files, at start and on every HUP, before workers drop to user: the key may stay readable
    by root alone."""
    keyfile: Annotated[NonEmptyStr | None, Option("tls", metavar="FILE")] = None
    """The certificate's private key in PEM; unset when certfile holds the key too."""
    keyfile_password_file: Annotated[NonEmptyStr | None, Option("tls", metavar="FILE")] = None
    """A file whose first line is the password of an encrypted keyfile (systemd's
    LoadCredential= gives one: see docs/tls.md). The password itself is never a setting, so
    it is never on a command line or in `wsgid config show`."""
    keyfile_password_env: Annotated[NonEmptyStr | None, Option("tls", metavar="NAME")] = None
    """The name of an environment variable holding the password of an encrypted keyfile.
    Without a password an encrypted key is refused at start, never asked for on a
    terminal."""
    ca_certs: Annotated[NonEmptyStr | None, Option("tls", metavar="FILE")] = None
    """The CA certificates (PEM) that client certificates are verified against."""
    cert_reqs: Annotated[
        CertReqs,
        Option("tls", metavar="MODE", accepts="none, optional or required (gunicorn's 0, 1, 2)"),
    ] = "none"
    """Client certificates: `none` (not asked for), `optional` (verified against ca_certs when
    sent) or `required` (a client without a valid one is refused during the handshake).
    Needs ca_certs."""
    ciphers: Annotated[NonEmptyStr | None, Option("tls", metavar="LIST")] = None
    """The OpenSSL cipher list for TLS 1.2 (TLS 1.3's suites are all strong and not affected).
    Unset: forward-secret AEAD ciphers only (ECDHE with AES-GCM or ChaCha20-Poly1305)."""
    suppress_ragged_eofs: Annotated[bool, Option("tls")] = True
    """Treat a client that closes without TLS's close_notify like one that closed cleanly; off,
    such a close while a request body is read is reported as a protocol error."""
    ssl_version: Annotated[
        NonEmptyStr | None,
        BeforeValidator(int_to_str),
        Option("tls", metavar="VERSION", accepts="a string or an integer (it has no effect)"),
    ] = None
    """Accepted for gunicorn compatibility (which ignores it since 21.0); it has no effect and
    is reported at start. Set tls_minimum_version instead."""
    do_handshake_on_connect: Annotated[bool, Option("tls")] = False
    """Accepted for gunicorn compatibility; it has no effect: the handshake always runs in the
    worker's event loop as the client's bytes arrive, bounded by header_timeout, and never
    blocks a worker or a thread."""
    tls_minimum_version: Annotated[
        TlsVersion, Option("tls", metavar="VERSION", accepts="1.2 or 1.3 (TLSv1.2, TLSv1_3)")
    ] = "1.2"
    """The oldest TLS version accepted. Older clients fail the handshake."""
    tls_binds: Annotated[
        tuple[BindAddress, ...],
        Option(
            "tls",
            metavar="ADDRESS",
            repeatable=True,
            comma_separated=True,
            accepts="bind entries, as written in bind",
        ),
    ] = ()
    """The listeners that serve HTTPS, as written in bind; empty means every listener. Lets
    one server listen on plain HTTP (say 8080, for a sidecar or a redirect) and HTTPS (8443)."""
    tls_reload_on_change: Annotated[bool, Option("tls")] = False
    """Also reload, as on HUP, when certfile, keyfile or ca_certs change on disk: the master
    looks every few seconds and reloads once a change has settled. For certificates renewed
    in place (cert-manager or another mounted Kubernetes secret, certbot without a deploy
    hook). Off by default: a reload starts new workers."""
    tls_keylog_file: Annotated[NonEmptyStr | None, Option("tls", metavar="FILE")] = None
    """Debugging only: append every TLS session's secrets to this file (NSS key log format,
    for Wireshark), created readable by its owner alone. SSLKEYLOGFILE in the environment is
    ignored, so that a stray variable never makes the server write them."""

    # --- logging --------------------------------------------------------------------------
    loglevel: Annotated[
        LogLevel,
        Option(
            "logging",
            ("--log-level",),
            metavar="LEVEL",
            accepts="one of debug, info, warning (or warn), error, critical, in any case",
        ),
    ] = "info"
    """The least severe level written to the error log."""
    errorlog: Annotated[
        NonEmptyStr,
        AfterValidator(check_log_target),
        Option(
            "logging",
            ("--error-logfile", "--log-file"),
            metavar="FILE",
            accepts=LOG_TARGETS_ACCEPTED,
        ),
    ] = "-"
    """Where the error log goes: `-` for standard error, a file path (created mode 0640, reopened on
    USR1), or syslog: `syslog` (the local /dev/log), `unix://PATH`, `udp://HOST:PORT` or
    `tcp://HOST:PORT`."""
    accesslog: Annotated[
        NonEmptyStr | None,
        AfterValidator(check_log_target),
        Option(
            "logging",
            ("--access-logfile",),
            metavar="FILE",
            accepts=LOG_TARGETS_ACCEPTED,
        ),
    ] = None
    """Where the access log goes: `-` for standard output, a file path, or a syslog address as for
    errorlog. Unset, there is no access log (and no cost per request)."""
    log_format: Annotated[LogFormat, Option("logging", metavar="FORMAT")] = "console"
    """The format of the error log: `console` (`<time> [<level>] <event> key=value`, colour on a
    terminal), `json` (one object per line) or `logfmt`."""
    access_log_format: Annotated[
        NonEmptyStr,
        AfterValidator(check_access_log_format),
        Option(
            "logging",
            ("--access-logformat",),
            metavar="FORMAT",
            accepts=ACCESS_FORMATS_ACCEPTED,
        ),
    ] = GUNICORN_FORMAT
    """The format of the access log: `json`, `logfmt`, `console`, `combined` (Apache/nginx
    combined), or a gunicorn format string of %(x)s atoms (see docs/logging.md). The default is
    gunicorn's."""
    capture_output: Annotated[bool, Option("logging")] = False
    """Send what the application writes to stdout and stderr to the error log, one event per
    line."""
    syslog: Annotated[bool, Option("logging", ("--log-syslog",))] = False
    """Also send the error log (and the access log, unless disable_redirect_access_to_syslog) to the
    syslog daemon at syslog_addr."""
    syslog_addr: Annotated[
        NonEmptyStr,
        AfterValidator(check_syslog_addr),
        Option(
            "logging",
            ("--log-syslog-to",),
            metavar="ADDRESS",
            accepts="syslog, unix://PATH[#dgram|#stream], udp://HOST[:PORT] or tcp://HOST[:PORT]",
        ),
    ] = "unix:///dev/log"
    """Where --log-syslog sends records. Unlike gunicorn (udp://localhost:514) the default is the
    local socket, which every syslog daemon and journald listen on."""
    syslog_prefix: Annotated[
        NonEmptyStr | None, Option("logging", ("--log-syslog-prefix",), metavar="TAG")
    ] = None
    """The syslog tag (APP-NAME) of the error log; the access log uses TAG.access. Default:
    wsgid."""
    syslog_facility: Annotated[
        SyslogFacility, Option("logging", ("--log-syslog-facility",), metavar="FACILITY")
    ] = "user"
    """The syslog facility of both logs."""
    syslog_format: Annotated[
        SyslogFraming, Option("logging", ("--log-syslog-format",), metavar="FRAMING")
    ] = "auto"
    """How syslog records are framed: `rfc5424` (timestamp with microseconds, hostname), `rfc3164`
    (what syslog(3) sends to /dev/log; journald only reads this one), or `auto`: rfc3164 on unix
    sockets, rfc5424 over UDP and TCP."""
    disable_redirect_access_to_syslog: Annotated[bool, Option("logging")] = False
    """With --log-syslog, keep the access log out of syslog."""
    spew: Annotated[bool, Option("logging")] = False
    """Trace every line of Python each worker runs, its pool threads included, and write it
    (`module:line: source`) to the error log at debug level; only with loglevel debug.
    Compiled wsgid code runs no Python lines, so only the application's and wsgid's
    interpreted code shows. Very slow: for a one-off look; py-spy and hunter
    (docs/running.md) are better tools."""
    logger_class: Annotated[
        NonEmptyStr | None,
        BeforeValidator(class_path),
        AfterValidator(check_logger_class),
        Option("logging", metavar="CLASS", accepts=LOGGER_CLASS_ACCEPTED),
    ] = None
    """gunicorn's logger class. wsgid's logs are its own structlog pipelines, so only
    gunicorn's default (`gunicorn.glogging.Logger`, or `simple`) is accepted, and means them;
    a custom class is refused, with what does its job here (log_format, access_log_format,
    a logconfig_dict handler or filter on the gunicorn.access logger; docs/gunicorn.md)."""
    logconfig: Annotated[
        NonEmptyStr | None, Option("logging", ("--log-config",), metavar="FILE")
    ] = None
    """A stdlib logging config file (fileConfig format) for the application's `logging` records,
    applied in the master before the workers start."""
    logconfig_json: Annotated[
        NonEmptyStr | None, Option("logging", ("--log-config-json",), metavar="FILE")
    ] = None
    """A stdlib logging config as a JSON file (dictConfig form). Beats logconfig."""
    logconfig_dict: Annotated[
        dict[str, Any],
        BeforeValidator(json_table),
        Option(
            "logging",
            ("--log-config-dict",),
            metavar="JSON",
            accepts="a table in logging.config.dictConfig form (JSON on the command line)",
        ),
    ] = Field(default_factory=dict)
    """A stdlib logging config as a table (dictConfig form); beats logconfig_json and logconfig. On
    the command line and in WSGID_LOGCONFIG_DICT, written as JSON."""

    # --- process --------------------------------------------------------------------------
    proc_name: Annotated[
        NonEmptyStr | None, Option("process", ("-n", "--name"), metavar="NAME")
    ] = None
    """The name shown in process titles (ps, top) instead of the application's, to tell several
    wsgid instances apart."""
    default_proc_name: Annotated[
        NonEmptyStr | None, Option("process", metavar="NAME", default_doc="the app")
    ] = None
    """The name in process titles when proc_name is not set. gunicorn sets it to the
    application's import string, which is what wsgid shows when it is unset."""
    user: Annotated[IdName | None, Option("process", ("-u", "--user"), metavar="USER")] = None
    """Run workers as this user, a name or a numeric uid."""
    group: Annotated[IdName | None, Option("process", ("-g", "--group"), metavar="GROUP")] = None
    """Run workers as this group, a name or a numeric gid."""
    initgroups: Annotated[bool, Option("process")] = False
    """With user: give the workers every group the user is a member of (the group database,
    as initgroups(3)), besides the primary one. Without it, a worker's only group is its
    primary group (or group); the master's supplementary groups are not kept, unless the
    master already is that user and group and cannot change its groups (no CAP_SETGID: a
    container started as the user), as under gunicorn."""
    umask: Annotated[
        int,
        BeforeValidator(parse_umask),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": 0o777},
                    {"type": "string", "pattern": "^(0[oO]?[0-7]{1,3}|0|[1-9][0-9]{0,2})$"},
                ]
            }
        ),
        Option(
            "process",
            ("-m", "--umask"),
            metavar="MASK",
            octal=True,
            accepts="a file mode mask from 0 to 0o777, in octal like 022 or 0o22",
        ),
    ] = Field(default=0, ge=0, le=0o777)
    """The mode mask of the unix socket files wsgid binds, as in gunicorn: the default 0 makes
    them 0777, and they belong to user/group. The processes keep the umask they were started
    with (systemd's UMask=; 022 when daemonized, as gunicorn's)."""
    pidfile: Annotated[NonEmptyStr | None, Option("process", ("-p", "--pid"), metavar="FILE")] = (
        None
    )
    """Write the master's process id to this file."""
    daemon: Annotated[bool, Option("process", ("-D", "--daemon"))] = False
    """Detach from the terminal and run in the background."""
    enable_stdio_inheritance: Annotated[
        bool, Option("process", ("-R", "--enable-stdio-inheritance"))
    ] = False
    """With daemon: keep standard output and error also when they are a pipe (`wsgid -D -R
    2>&1 | logger`). Without it a daemon keeps them only when they are a file or a socket;
    a terminal is always replaced by /dev/null."""

    # --- health and draining --------------------------------------------------------------
    metrics_bind: Annotated[
        BindAddress | None, Option("monitoring", metavar="ADDRESS", accepts=BIND_ACCEPTED)
    ] = None
    """An address of its own (HOST:PORT, unix:PATH, fd://N or systemd:NAME) where the master
    answers health probes over HTTP: /livez is 200 while the master runs; /readyz is 200 once
    the first workers have booted, while a worker serves and the server is not draining or
    stopping, 503 otherwise. Keep it off the public network. Off by default; changed on HUP."""
    shutdown_delay: Annotated[Seconds, Option("monitoring", metavar="SECONDS")] = 0.0
    """On a graceful stop (TERM or QUIT), first keep serving this long with /readyz answering
    503, so that load balancers stop sending new requests before the listeners close; then
    stop gracefully. Kubernetes takes a pod out of its endpoints while it sends TERM: a few
    seconds here avoid refused requests on every rollout. A second TERM or QUIT, or INT,
    cuts the delay short; an upgrade (USR2) has none. Make the time a supervisor waits for
    the stop cover it: shutdown_delay + graceful_timeout."""

    # --- metrics --------------------------------------------------------------------------
    prometheus_multiproc_dir: Annotated[
        NonEmptyStr,
        AfterValidator(check_managed_dir),
        Option("monitoring", metavar="DIR", accepts=MANAGED_DIR_ACCEPTED),
    ] = "auto"
    """Where the application's own prometheus_client metrics are shared between workers
    (PROMETHEUS_MULTIPROC_DIR), which wsgid makes ready before the app is imported, and whose
    metrics /metrics merges: auto manages one when metrics_bind is set (the one
    PROMETHEUS_MULTIPROC_DIR names, else $RUNTIME_DIRECTORY/prometheus under systemd, else a
    private temporary directory); a path manages that one; off leaves it to you. Read at
    start."""
    statsd_host: Annotated[
        NonEmptyStr | None,
        AfterValidator(check_statsd_host),
        Option("monitoring", metavar="STATSD_ADDR", accepts=STATSD_ACCEPTED),
    ] = None
    """Send metrics to this statsd server (HOST:PORT, HOST for port 8125, or unix:PATH), under
    gunicorn's names: requests, request durations, responses by status code, workers (busy
    and idle too) and error-log events. The master sends them every statsd_interval; the
    workers only count, so serving never waits on statsd. Off by default."""
    statsd_prefix: Annotated[str, Option("monitoring", metavar="STATSD_PREFIX")] = ""
    """Put this before every statsd metric name (a `.` is added if it does not end with one)."""
    dogstatsd_tags: Annotated[str, Option("monitoring", metavar="DOGSTATSD_TAGS")] = ""
    """Datadog tags added to every statsd metric, as `tag1:value1,tag2:value2`."""
    statsd_interval: Annotated[
        float, Field(gt=0, le=3600, allow_inf_nan=False), Option("monitoring", metavar="SECONDS")
    ] = 1.0
    """How often the master sends the statsd metrics: counts are what changed since the last
    time, gauges the values of the moment."""
    statsd_naming: Annotated[
        StatsdNaming, Option("monitoring", metavar="NAMES", accepts="gunicorn or wsgid")
    ] = "gunicorn"
    """The statsd metric names: gunicorn's (`gunicorn.requests`, ...), which its dashboards
    expect, or wsgid's (`wsgid.requests`, ...; also in-flight requests and worker restarts by
    cause)."""
    enable_backlog_metric: Annotated[bool, Option("monitoring")] = False
    """Also send to statsd how many connections wait in the listeners' accept queues (TCP
    listeners on Linux), as gunicorn's `gunicorn.backlog`."""

    # --- control socket -------------------------------------------------------------------
    control_socket: Annotated[
        NonEmptyStr,
        AfterValidator(check_managed_dir),
        Option("monitoring", metavar="PATH", accepts=CONTROL_SOCKET_ACCEPTED),
    ] = "auto"
    """The UNIX socket `wsgid status` reads the workers' state from: auto puts it in
    systemd's RuntimeDirectory ($RUNTIME_DIRECTORY/control.sock) and nowhere else (so it is
    off outside systemd); an absolute path puts it there; off: none. Read-only; answered
    only to root and the server's own user. Read at start."""
    control_socket_mode: Annotated[
        int,
        BeforeValidator(parse_mode),
        Option(
            "monitoring",
            metavar="MODE",
            octal=True,
            accepts="a file mode from 0 to 0o777, in octal like 600 or 0o600",
        ),
    ] = Field(default=0o600, ge=0, le=0o777)
    """The file mode of the control socket (the peer's user is checked as well)."""
    control_socket_disable: Annotated[bool, Option("monitoring")] = False
    """No control socket, whatever control_socket says (gunicorn's name)."""

    # --- hooks ----------------------------------------------------------------------------
    on_starting: Hook = None
    """Called with (server) in the master, before the listeners are bound."""
    on_reload: Hook = None
    """Called with (server) in the master, on HUP: the function of the configuration just read,
    before the new workers start."""
    when_ready: Hook = None
    """Called with (server) in the master, once the first generation of workers has booted."""
    pre_fork: Hook = None
    """Called with (server, worker) in the master, before each worker is forked."""
    post_fork: Hook = None
    """Called with (server, worker) in the worker, just after the fork."""
    post_worker_init: Hook = None
    """Called with (worker) in the worker, after the application is loaded."""
    worker_int: Hook = None
    """Called with (worker) in the worker, when it gets INT or QUIT."""
    worker_abort: Hook = None
    """Called with (worker) in the worker, when the master aborts it after a timeout."""
    pre_exec: Hook = None
    """Called with (server) in the master, before the new master is exec'd (USR2)."""
    pre_request: Hook = None
    """Called with (worker, req) in the worker, before the application is called."""
    post_request: Hook = None
    """Called with (worker, req, environ, resp) in the worker, after the response was sent."""
    child_exit: Hook = None
    """Called with (server, worker) in the master, after a worker was reaped."""
    worker_exit: Hook = None
    """Called with (server, worker) in the worker as it leaves, as in gunicorn: after its last
    request (a stop, a reload, max_requests), not when it is killed or aborted at its
    timeout. Where a flush-on-exit recipe goes (OpenTelemetry's shutdown(), Sentry's flush());
    child_exit is the master's."""
    nworkers_changed: Hook = None
    """Called with (server, new_value, old_value) in the master: at start (old_value None) and
    when the worker count changes."""
    on_exit: Hook = None
    """Called with (server) in the master, just before it exits."""
    ssl_context: Hook = None
    """Called with (settings, default_factory) in the master whenever the TLS context is built
    (at start and on HUP); returns the ssl.SSLContext to serve with. default_factory() builds
    wsgid's own from the TLS settings, for the hook to adjust (an SNI callback, a
    certificate of its own)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return no_nul(value)

    @model_validator(mode="after")
    def _combined(self) -> Settings:
        check_combined(self)
        return self
