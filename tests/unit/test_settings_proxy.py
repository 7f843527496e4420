"""The "behind a proxy" settings: gunicorn's spellings, their checks and what they derive."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.settings import APP, error_of, load


@pytest.mark.parametrize(
    ("argv", "env", "mode"),
    [
        (["--proxy-protocol"], {}, "auto"),  # the bare flag, as in gunicorn
        (["--proxy-protocol", "v2"], {}, "v2"),
        (["--proxy-protocol=V1"], {}, "v1"),
        ([], {"WSGID_PROXY_PROTOCOL": "true"}, "auto"),
        ([], {"WSGID_PROXY_PROTOCOL": "none"}, "off"),
        ([], {}, "off"),
    ],
)
def test_proxy_protocol_takes_gunicorn_spellings(
    argv: list[str], env: dict[str, str], mode: str
) -> None:
    assert load([APP, *argv], env).settings.proxy_protocol == mode


def test_proxy_protocol_true_in_the_file_means_auto(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[proxy]\nproxy_protocol = true\n", encoding="utf-8")
    assert load([APP, "-c", str(path)]).settings.proxy_protocol == "auto"


def test_a_bad_proxy_protocol_names_the_flag_and_the_choices() -> None:
    message = error_of([APP, "--proxy-protocol", "v3"])
    assert '--proxy-protocol "v3"' in message and "off, v1, v2 or auto" in message


def test_proxy_protocol_binds_must_name_bind_entries() -> None:
    message = error_of([APP, "-b", "127.0.0.1:8000", "--proxy-protocol", "v2",
                        "--proxy-protocol-binds", "127.0.0.1:9000"])  # fmt: skip
    assert "127.0.0.1:9000" in message and "bind: 127.0.0.1:8000" in message


def test_proxy_protocol_binds_without_proxy_protocol_is_an_error() -> None:
    assert "proxy_protocol is off" in error_of([APP, "--proxy-protocol-binds", "127.0.0.1:8000"])


def test_only_the_named_listeners_require_the_header() -> None:
    settings = load([APP, "-b", "127.0.0.1:8000", "-b", "localhost:8001", "--proxy-protocol", "v1",
                     "--proxy-protocol-binds", "localhost:8001"]).settings  # fmt: skip
    assert settings.proxy_protocol_of("localhost:8001") == "v1"
    assert settings.proxy_protocol_of("127.0.0.1:8000") is None
    every = load([APP, "--proxy-protocol", "auto"]).settings
    assert every.proxy_protocol_of("127.0.0.1:8000") == "auto"
    assert load().settings.proxy_protocol_of("127.0.0.1:8000") is None


def test_forwarded_allow_ips_defaults_from_gunicorn_s_variable() -> None:
    loaded = load(env={"FORWARDED_ALLOW_IPS": "10.0.0.0/8, 192.168.1.1"})
    assert loaded.settings.forwarded_allow_ips == ("10.0.0.0/8", "192.168.1.1")
    assert loaded.sources["forwarded_allow_ips"] == "default"
    ours = load(env={"FORWARDED_ALLOW_IPS": "10.0.0.0/8", "WSGID_FORWARDED_ALLOW_IPS": "*"})
    assert ours.settings.forwarded_allow_ips == ("*",)


def test_an_allow_list_entry_with_host_bits_names_its_source_and_the_fix() -> None:
    message = error_of(env={"FORWARDED_ALLOW_IPS": "10.0.0.1/8"})
    assert 'FORWARDED_ALLOW_IPS="10.0.0.1/8"' in message and "10.0.0.0/8" in message
    message = error_of([APP, "--proxy-allow-from", "127.0.0.1,nonsense"])
    assert "--proxy-allow-from" in message and "'nonsense'" in message


def test_secure_scheme_headers_from_a_table_or_json(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[proxy]\nsecure_scheme_headers = { X-Scheme = "https" }\n', encoding="utf-8")
    assert load([APP, "-c", str(path)]).settings.secure_scheme_headers == {"X-Scheme": "https"}
    env = {"WSGID_SECURE_SCHEME_HEADERS": '{"X-Forwarded-Proto": "https"}'}
    assert load(env=env).settings.secure_scheme_headers == {"X-Forwarded-Proto": "https"}


def test_a_scheme_header_written_with_underscores_is_refused() -> None:
    message = error_of(env={"WSGID_SECURE_SCHEME_HEADERS": '{"X_FORWARDED_PROTO": "https"}'})
    assert "underscore" in message and "WSGID_SECURE_SCHEME_HEADERS" in message


def test_forwarder_headers_accept_only_the_three_environ_keys() -> None:
    loaded = load([APP, "--forwarder-headers", "script_name,REMOTE_USER"])
    assert loaded.settings.forwarder_headers == ("SCRIPT_NAME", "REMOTE_USER")
    assert "HTTP_HOST" in error_of([APP, "--forwarder-headers", "HTTP_HOST"])


def test_derived_limits_and_forwarding_follow_the_settings() -> None:
    settings = load([APP, "--forwarder-headers", "REMOTE_USER"]).settings
    assert settings.limits.forwarder == frozenset({"REMOTE_USER"})
    assert {"HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_SSL"} <= settings.limits.protected
    fwd = settings.forwarding  # built anew on each call: a worker asks once
    assert fwd.rules("127.0.0.1") is fwd.rules("") is fwd.trusted
    assert fwd.rules("192.0.2.1") is fwd.untrusted is not None
