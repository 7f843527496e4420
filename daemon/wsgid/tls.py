"""TLS: the server's `SSLContext`, what its certificate says, and what a connection tells the app.

Owns: building the one context a generation of workers serves with, from the TLS settings
(gunicorn's names plus `tls_minimum_version`, the key password sources and `tls_keylog_file`)
and the `ssl_context` hook; the errors that stop a start or a reload when the files are wrong
(each names the setting, where it came from and the file); the certificate's subject,
issuer, fingerprint and expiry for the log; and the mod_ssl environ keys of one handshake.
How connections use the context (the handshake in the event loop, reads and writes) is the
workers' (`workers/loop.py`, `workers/connection.py`).

Decisions:
- The master builds the context, at start and on every HUP, and the workers inherit it by
  fork. The files are read before workers drop to `user`, so a key readable by root alone
  works, no context is built per connection (gunicorn's sync and gthread workers load the
  files for every connection, gunicorn#3182), and all workers share the session ticket keys,
  so a client resumes its session whichever worker it reaches. A reload builds a new one:
  new workers serve the new certificate; the old ones keep theirs until they exit.
- `ssl.SSLContext(PROTOCOL_TLS_SERVER)`, never `create_default_context()`: the latter writes
  session secrets wherever SSLKEYLOGFILE points.
- TLS 1.2 at least, set explicitly (OpenSSL builds differ in their defaults); no compression,
  no renegotiation; ALPN offers http/1.1 only; one TLS 1.3 session ticket per handshake.
- A key password is given to OpenSSL as a callback: without one, an encrypted key would make
  OpenSSL ask on the terminal, which a daemon does not have (gunicorn#3279).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from wsgid.runtime import ConfigError, RuntimeSettings

# Forward-secret AEAD suites only, for TLS 1.2 (TLS 1.3's are chosen apart, all strong).
DEFAULT_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"
VERIFY_MODES = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
MINIMUM_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.S)
# RFC 4514's short names of the attributes a certificate's names use most.
_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


class Certificate(NamedTuple):
    """What the log says of the served certificate."""

    subject: str
    issuer: str
    fingerprint: str  # SHA-256 of the DER, as `openssl x509 -fingerprint -sha256` shows it
    not_after: str
    expires_in_days: float


def build(
    settings: RuntimeSettings,
    sources: Mapping[str, str],
    hook: Callable[..., Any] | None = None,
) -> ssl.SSLContext:
    """The context to serve with; ConfigError naming the setting, its source and the file."""
    for name in ("certfile", "keyfile", "ca_certs", "keyfile_password_file"):
        _check_readable(settings, sources, name)

    def default_factory() -> ssl.SSLContext:
        return _default_context(settings, sources)

    if hook is None:
        return default_factory()
    try:
        context = hook(HookConfig(settings), default_factory)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"the ssl_context hook failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(context, ssl.SSLContext):
        raise ConfigError(
            f"the ssl_context hook returned {type(context).__name__}, not an ssl.SSLContext"
        )
    return context


# The settings gunicorn's Config.ssl_options gathers (its "SSL" section).
_SSL_OPTIONS = (
    "keyfile", "certfile", "ssl_version", "cert_reqs", "ca_certs", "suppress_ragged_eofs",
    "do_handshake_on_connect", "ciphers",
)  # fmt: skip


class HookConfig:
    """The `config` the ssl_context hook gets: the settings, with gunicorn's Config's types
    where wsgid's differ.

    A hook written for gunicorn builds its own context from them (`ctx.verify_mode =
    config.cert_reqs`, `ssl.SSLContext(config.ssl_version)`, to add a key password, say):
    `cert_reqs` is then the `ssl.CERT_*` number, not wsgid's word; `ssl_version` the
    `ssl.PROTOCOL_*` number (gunicorn's default, PROTOCOL_TLS_SERVER, when it is not set);
    and `is_ssl` and `ssl_options` are there. Every other name is the setting's own.
    """

    def __init__(self, settings: RuntimeSettings) -> None:
        self._settings = settings

    def __getattr__(self, name: str) -> Any:
        return getattr(self._settings, name)

    @property
    def cert_reqs(self) -> int:
        return int(VERIFY_MODES[self._settings.cert_reqs])

    @property
    def ssl_version(self) -> int | str:
        value = self._settings.ssl_version
        if value is None:
            return int(ssl.PROTOCOL_TLS_SERVER)
        if value.isdigit():
            return int(value)
        protocol = getattr(ssl, f"PROTOCOL_{value}", None)  # gunicorn takes the names too
        return int(protocol) if protocol is not None else value

    @property
    def is_ssl(self) -> bool:
        return bool(self._settings.certfile or self._settings.keyfile)

    @property
    def ssl_options(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _SSL_OPTIONS}


def _default_context(settings: RuntimeSettings, sources: Mapping[str, str]) -> ssl.SSLContext:
    certfile = settings.certfile
    assert certfile is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSIONS[settings.tls_minimum_version]
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.set_ciphers(settings.ciphers or DEFAULT_CIPHERS)
    except ssl.SSLError:
        raise ConfigError(
            f"ciphers {settings.ciphers!r} ({_source(sources, 'ciphers')}) selects no cipher"
            " OpenSSL knows; give an OpenSSL cipher list, like ECDHE+AESGCM:ECDHE+CHACHA20"
        ) from None
    context.set_alpn_protocols(["http/1.1"])
    # TLS 1.3: one session ticket per handshake, not OpenSSL's two (as Go's server): a client
    # resumes its next connection with one, and the second is bytes for nothing (docs/tls.md).
    context.num_tickets = 1
    asked = False

    def password() -> bytes:
        nonlocal asked
        asked = True
        return _password(settings, sources)

    try:
        context.load_cert_chain(certfile, settings.keyfile, password)
    except ConfigError:
        raise
    except ssl.SSLError as exc:
        raise ConfigError(_key_problem(settings, sources, exc, asked)) from None
    if settings.ca_certs is not None:
        try:
            context.load_verify_locations(cafile=settings.ca_certs)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"ca_certs {settings.ca_certs} ({_source(sources, 'ca_certs')}) holds no"
                f" PEM certificate OpenSSL can read ({exc.reason or exc})"
            ) from None
    context.verify_mode = VERIFY_MODES[settings.cert_reqs]
    if settings.tls_keylog_file is not None:
        try:
            # Made readable by its owner alone: the secrets decrypt every session. (OpenSSL
            # would create it as any file, by the umask.) One there already keeps its mode.
            os.close(os.open(settings.tls_keylog_file, os.O_WRONLY | os.O_CREAT, 0o600))
            context.keylog_filename = settings.tls_keylog_file  # opened for appending here
        except OSError as exc:
            raise ConfigError(
                f"tls_keylog_file {settings.tls_keylog_file}"
                f" ({_source(sources, 'tls_keylog_file')}) cannot be opened for appending:"
                f" {exc.strerror or exc}"
            ) from None
    return context


def _key_problem(
    settings: RuntimeSettings, sources: Mapping[str, str], exc: ssl.SSLError, asked: bool
) -> str:
    """The message for a certificate and key that OpenSSL refused to load."""
    cert = f"certfile {settings.certfile} ({_source(sources, 'certfile')})"
    key = (
        f"keyfile {settings.keyfile} ({_source(sources, 'keyfile')})"
        if settings.keyfile is not None
        else cert
    )
    reason = exc.reason or str(exc)
    if reason == "KEY_VALUES_MISMATCH":
        return f"{key} is not the private key of the certificate in {cert}"
    if asked:  # OpenSSL reports a wrong password as it can: bad decrypt, or a PEM error
        return f"{key} is encrypted and the password given does not decrypt it ({reason})"
    if settings.keyfile is None:
        return (
            f"{cert} cannot be used: without keyfile it must hold the certificate and its"
            f" private key, in PEM ({reason})"
        )
    if reason == "PEM_LIB" or reason.startswith("NO_"):
        return (
            f"{cert} and {key}: no PEM certificate and private key OpenSSL can read there"
            f" ({reason})"
        )
    return f"{cert} and {key} cannot be used: {reason}"


def _password(settings: RuntimeSettings, sources: Mapping[str, str]) -> bytes:
    """The key's password, from keyfile_password_file or keyfile_password_env."""
    if settings.keyfile_password_file is not None:
        with open(settings.keyfile_password_file, "rb") as f:
            return f.readline().rstrip(b"\r\n")
    name = settings.keyfile_password_env
    if name is not None:
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(
                f"keyfile_password_env ({_source(sources, 'keyfile_password_env')}) names"
                f" {name}, which is not set in the environment"
            )
        return value.encode()
    setting = "keyfile" if settings.keyfile is not None else "certfile"
    raise ConfigError(
        f"the private key in {setting} {getattr(settings, setting)}"
        f" ({_source(sources, setting)}) is encrypted and no password is given: set"
        " keyfile_password_file (a file holding it, e.g. from systemd's LoadCredential=) or"
        " keyfile_password_env (the name of a variable holding it)"
    )


def _check_readable(settings: RuntimeSettings, sources: Mapping[str, str], name: str) -> None:
    path = getattr(settings, name)
    if path is None:
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{name} {path} ({_source(sources, name)}) cannot be read: {exc.strerror}"
        ) from None


def _source(sources: Mapping[str, str], name: str) -> str:
    source = sources.get(name, "default")
    return f"from {source}" if source != "default" else "the default"


def files_state(settings: RuntimeSettings) -> tuple[tuple[str, int, int, int], ...]:
    """What tells a change of the TLS files: each one's inode, size and mtime (following
    symbolic links, as a Kubernetes secret volume swaps them)."""
    state = []
    for path in (settings.certfile, settings.keyfile, settings.ca_certs):
        if path is None:
            continue
        try:
            st = os.stat(path)
        except OSError:
            state.append((path, -1, -1, -1))  # gone for now: a change, once it settles
            continue
        state.append((path, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(state)


# the certificate, for the log


def certificate(path: str) -> Certificate | None:
    """What the first certificate in `path` says; None if it cannot be decoded."""
    try:
        with open(path, "rb") as f:
            match = _PEM_CERT.search(f.read())
        # The ssl module decodes a certificate file only through this function (it backs
        # its own tests); the context keeps no readable copy of its certificate.
        decoded = ssl._ssl._test_decode_cert(path)  # type: ignore[attr-defined]
    except (OSError, ssl.SSLError, AttributeError):
        return None
    if match is None:
        return None
    der = base64.b64decode(b"".join(match.group(1).split()))
    digest = hashlib.sha256(der).hexdigest().upper()
    not_after = decoded.get("notAfter", "")
    expires = ssl.cert_time_to_seconds(not_after) if not_after else time.time()
    return Certificate(
        subject=distinguished_name(decoded.get("subject", ())),
        issuer=distinguished_name(decoded.get("issuer", ())),
        fingerprint=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
        not_after=not_after,
        expires_in_days=round((expires - time.time()) / 86400, 1),
    )


def log_certificate(log: Any, settings: RuntimeSettings) -> None:
    """Say which certificate is served (at start and on each reload); warn when it expired."""
    certfile = settings.certfile
    if certfile is None:
        return
    cert = certificate(certfile)
    if cert is None:
        log.info("tls.certificate", file=certfile)
    else:
        log.info(
            "tls.certificate",
            file=certfile,
            subject=cert.subject,
            issuer=cert.issuer,
            fingerprint_sha256=cert.fingerprint,
            not_after=cert.not_after,
            expires_in_days=cert.expires_in_days,
        )
        if cert.expires_in_days < 0:
            log.warning(
                "tls.certificate_expired",
                file=certfile,
                subject=cert.subject,
                not_after=cert.not_after,
            )
    if settings.ssl_version is not None:
        log.warning(
            "tls.setting_ignored",
            setting="ssl_version",
            value=settings.ssl_version,
            hint="set tls_minimum_version",
        )


# a connection's keys for the app


def connection_environ(sock: ssl.SSLObject) -> dict[str, str]:
    """mod_ssl's environ keys (PEP 3333 names them) for a connection whose handshake is done."""
    cipher = sock.cipher()
    env = {"SSL_PROTOCOL": sock.version() or "", "SSL_CIPHER": cipher[0] if cipher else ""}
    der = sock.getpeercert(binary_form=True)
    if der is None:
        env["SSL_CLIENT_VERIFY"] = "NONE"
        return env
    # A certificate is only kept when it verified (cert_reqs optional or required).
    cert = sock.getpeercert() or {}
    env["SSL_CLIENT_VERIFY"] = "SUCCESS"
    env["SSL_CLIENT_S_DN"] = distinguished_name(cert.get("subject", ()))
    env["SSL_CLIENT_I_DN"] = distinguished_name(cert.get("issuer", ()))
    env["SSL_CLIENT_CERT"] = ssl.DER_cert_to_PEM_cert(der)
    return env


def distinguished_name(rdns: Any) -> str:
    """A name as `getpeercert()` gives it, written as RFC 4514 writes it (last RDN first)."""
    parts = []
    for rdn in reversed(rdns):
        parts.append(
            "+".join(f"{_SHORT_NAMES.get(key, key)}={_escape(value)}" for key, value in rdn)
        )
    return ",".join(parts)


def _escape(value: str) -> str:
    """RFC 4514 §2.4: the characters an attribute value escapes."""
    out = re.sub(r'([,+"\\<>;])', r"\\\1", value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" ") and len(out) > 1:
        out = out[:-1] + "\\ "
    return out
