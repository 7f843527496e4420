"""The TLS settings: gunicorn's spellings, the checks that need no file, what they derive,
and how a certificate's names are written (RFC 4514) for the environ and the log."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.settings import APP, error_of, load
from wsgid.tls import distinguished_name


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("0", "none"),
        ("1", "optional"),
        ("2", "required"),
        ("CERT_REQUIRED", "required"),
        ("Optional", "optional"),
        ("none", "none"),
    ],
)
def test_cert_reqs_takes_gunicorn_numbers_and_names(value: str, mode: str) -> None:
    argv = [APP, "--certfile", "c.pem", "--ca-certs", "ca.pem", "--cert-reqs", value]
    assert load(argv).settings.cert_reqs == mode


def test_cert_reqs_as_a_toml_integer(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[tls]\ncertfile = "c.pem"\nca_certs = "ca.pem"\ncert_reqs = 2\n')
    assert load([APP, "-c", str(path)]).settings.cert_reqs == "required"


@pytest.mark.parametrize(("value", "version"), [("1.3", "1.3"), ("TLSv1.2", "1.2"),
                                                ("TLSv1_3", "1.3")])  # fmt: skip
def test_tls_minimum_version_spellings(value: str, version: str) -> None:
    argv = [APP, "--certfile", "c.pem", "--tls-minimum-version", value]
    assert load(argv).settings.tls_minimum_version == version


def test_tls_minimum_version_refuses_older_versions_naming_the_choices() -> None:
    message = error_of([APP, "--certfile", "c.pem", "--tls-minimum-version", "1.1"])
    assert "--tls-minimum-version" in message and "1.2 or 1.3" in message


def test_cert_reqs_without_ca_certs_is_an_error_naming_both() -> None:
    message = error_of([APP, "--certfile", "c.pem", "--cert-reqs", "required"])
    assert "cert_reqs is required but ca_certs is not set" in message
    assert "flag:--cert-reqs" in message


def test_tls_settings_without_certfile_are_an_error() -> None:
    message = error_of([APP, "--keyfile", "k.pem", "--ca-certs", "ca.pem"])
    assert "keyfile, ca_certs are set but certfile is not" in message


def test_tls_binds_must_name_bind_entries() -> None:
    message = error_of([APP, "-b", "127.0.0.1:8443", "--certfile", "c.pem",
                        "--tls-binds", "127.0.0.1:9443"])  # fmt: skip
    assert "tls_binds names 127.0.0.1:9443" in message and "bind: 127.0.0.1:8443" in message


def test_only_the_named_listeners_serve_https() -> None:
    settings = load([APP, "-b", "127.0.0.1:8080", "-b", "127.0.0.1:8443", "--certfile", "c.pem",
                     "--tls-binds", "127.0.0.1:8443"]).settings  # fmt: skip
    assert settings.tls_of("127.0.0.1:8443")
    assert not settings.tls_of("127.0.0.1:8080")
    every = load([APP, "-b", "127.0.0.1:8080", "--certfile", "c.pem"]).settings
    assert every.tls_of("127.0.0.1:8080")
    assert not load([APP]).settings.tls_of("127.0.0.1:8000")


def test_gunicorn_settings_without_effect_are_accepted() -> None:
    settings = load([APP, "--certfile", "c.pem", "--ssl-version", "5",
                     "--do-handshake-on-connect"]).settings  # fmt: skip
    assert settings.ssl_version == "5" and settings.do_handshake_on_connect


def test_a_distinguished_name_is_written_last_rdn_first_with_rfc4514_escapes() -> None:
    subject = (
        (("countryName", "DE"),),
        (("organizationName", "Acme, Inc."),),
        (("commonName", "#client+1 "),),
    )
    assert distinguished_name(subject) == r"CN=\#client\+1\ ,O=Acme\, Inc.,C=DE"


def test_a_multi_valued_rdn_joins_with_plus() -> None:
    subject = ((("commonName", "a"), ("userId", "7")),)
    assert distinguished_name(subject) == "CN=a+UID=7"
