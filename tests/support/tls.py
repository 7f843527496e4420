"""Certificates for the TLS tests, made with the real `openssl` command in a given directory.

Owns `make_certs(directory)`: a test CA and, signed by it, two server certificates for
127.0.0.1 and localhost (the second one for rotation), a client certificate
(`CN=client, O=wsgid tests`), an expired server certificate; a client certificate signed by
another CA; a key that matches no certificate; the first server key encrypted, with its
password in a file. And `fingerprint()`: a certificate's SHA-256 fingerprint as
`openssl x509 -fingerprint -sha256` prints it (upper-case hex, colons), which is how wsgid
logs it; `served_fingerprint()`: that of the certificate a server serves, through
`openssl s_client`; `https_get()`: one GET over TLS with Python's `ssl`, and what came back.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CA_SUBJECT = "/O=wsgid tests/CN=wsgid test CA"
CA_DN = "CN=wsgid test CA,O=wsgid tests"  # RFC 4514: the most specific part first
CLIENT_SUBJECT = "/O=wsgid tests/CN=client"
CLIENT_DN = "CN=client,O=wsgid tests"
PASSWORD = "correct horse battery staple"

_SERVER_EXT = """\
basicConstraints = CA:FALSE
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
"""
_CLIENT_EXT = """\
basicConstraints = CA:FALSE
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
"""
# `openssl x509 -req` signs from now on; only `openssl ca` takes dates in the past.
_EXPIRED_CA_CONFIG = """\
[ca]
default_ca = test_ca
[test_ca]
database = {dir}/expired-index.txt
new_certs_dir = {dir}
rand_serial = yes
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
[server]
{ext}"""


@dataclass(frozen=True)
class Certs:
    ca: Path
    ca_key: Path
    server: Path
    server_key: Path
    server2: Path  # a second certificate for the same names: the one rotated in
    server2_key: Path
    client: Path
    client_key: Path
    rogue_client: Path  # signed by another CA, with the same subject as `client`
    rogue_client_key: Path
    expired: Path
    expired_key: Path
    mismatched_key: Path  # matches no certificate here
    encrypted_key: Path  # server_key, encrypted with the password in password_file
    password_file: Path


@contextlib.contextmanager
def certificates(directory: Path) -> Iterator[Certs]:
    """`make_certs` in `directory`, removed afterwards (for a module-scoped fixture)."""
    try:
        yield make_certs(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def openssl(*args: str, input: bytes | None = None) -> str:
    """Run `openssl ARGS`; its stdout; an AssertionError with its stderr if it fails."""
    done = subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=60)
    assert done.returncode == 0, (args, done.stderr.decode(errors="replace"))
    return done.stdout.decode(errors="replace")


def _key(path: Path) -> Path:
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path))
    return path


def _ca(directory: Path, name: str, subject: str) -> tuple[Path, Path]:
    key = _key(directory / f"{name}.key")
    cert = directory / f"{name}.pem"
    openssl(
        "req", "-x509", "-new", "-key", str(key), "-out", str(cert), "-days", "3650",
        "-subj", subject,
        "-addext", "keyUsage = critical, keyCertSign, cRLSign",
    )  # fmt: skip
    return cert, key


def _signed(
    directory: Path, name: str, subject: str, ext: str, ca: tuple[Path, Path]
) -> tuple[Path, Path]:
    key = _key(directory / f"{name}.key")
    csr, cert, extfile = (directory / f"{name}{suffix}" for suffix in (".csr", ".pem", ".ext"))
    extfile.write_text(ext)
    openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", subject)
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-days", "825", "-sha256", "-extfile", str(extfile), "-out", str(cert),
    )  # fmt: skip
    return cert, key


def _expired(directory: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    key = _key(directory / "expired.key")
    csr, cert, config = (directory / f"expired{s}" for s in (".csr", ".pem", "-ca.cnf"))
    (directory / "expired-index.txt").write_text("")
    config.write_text(_EXPIRED_CA_CONFIG.format(dir=directory, ext=_SERVER_EXT))
    openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    openssl(
        "ca", "-batch", "-notext", "-config", str(config), "-extensions", "server",
        "-cert", str(ca[0]), "-keyfile", str(ca[1]), "-in", str(csr), "-out", str(cert),
        "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
    )  # fmt: skip
    return cert, key


def make_certs(directory: Path) -> Certs:
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory, "ca", CA_SUBJECT)
    other_ca = _ca(directory, "other-ca", "/O=somebody else/CN=another CA")
    server = _signed(directory, "server", "/CN=localhost", _SERVER_EXT, ca)
    server2 = _signed(directory, "server2", "/CN=localhost", _SERVER_EXT, ca)
    client = _signed(directory, "client", CLIENT_SUBJECT, _CLIENT_EXT, ca)
    rogue = _signed(directory, "rogue-client", CLIENT_SUBJECT, _CLIENT_EXT, other_ca)
    expired = _expired(directory, ca)
    password_file = directory / "key-password"
    password_file.write_text(PASSWORD + "\n")
    encrypted = directory / "server-encrypted.key"
    openssl(
        "pkey", "-in", str(server[1]), "-aes-256-cbc",
        "-passout", f"file:{password_file}", "-out", str(encrypted),
    )  # fmt: skip
    return Certs(
        ca=ca[0],
        ca_key=ca[1],
        server=server[0],
        server_key=server[1],
        server2=server2[0],
        server2_key=server2[1],
        client=client[0],
        client_key=client[1],
        rogue_client=rogue[0],
        rogue_client_key=rogue[1],
        expired=expired[0],
        expired_key=expired[1],
        mismatched_key=_key(directory / "mismatched.key"),
        encrypted_key=encrypted,
        password_file=password_file,
    )


def fingerprint_of_pem(pem: str) -> str:
    """The SHA-256 fingerprint of a PEM certificate, `AB:CD:...` as openssl prints it."""
    out = openssl("x509", "-noout", "-fingerprint", "-sha256", input=pem.encode())
    return out.strip().partition("=")[2]


def fingerprint(cert: Path) -> str:
    return fingerprint_of_pem(cert.read_text())


def served_fingerprint(port: int, ca: Path, host: str = "127.0.0.1") -> str:
    """The fingerprint of the certificate served on `host`:`port`, as `openssl s_client` gets
    it, verified against `ca` and for the IP address `host`; "" if the handshake fails."""
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"{host}:{port}", "-CAfile", str(ca),
         "-verify_ip", host, "-verify_return_error"],
        input=b"",
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    if done.returncode != 0 or b"-----BEGIN CERTIFICATE-----" not in done.stdout:
        return ""
    return fingerprint_of_pem(done.stdout.decode(errors="replace"))


def https_get(port: int, context: ssl.SSLContext, path: str = "/") -> tuple[bytes, bytes]:
    """`GET path` on 127.0.0.1:`port` over TLS with `Connection: close`: the response's head
    and body as they came, read until the server closed (OSError if it could not be had)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=20) as raw,
        context.wrap_socket(raw) as sock,
    ):
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body
