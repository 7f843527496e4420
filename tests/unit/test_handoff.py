"""The USR2 hand-off: what the old master writes, the new master reads back, and nothing else.

The writer and the reader are tested against each other: in-process through the environment
variables, and once through a real exec with real listening sockets, as an upgrade runs them.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from wsgid import handoff
from wsgid.handoff import (
    ENV_INHERIT_FDS,
    ENV_OLD_MASTER,
    ENV_SIDE_FD,
    Handoff,
    HandoffError,
    PassedSocket,
    decode,
    encode,
    take,
)
from wsgid.listeners import BindSpec, Listener, ListenerError


@pytest.mark.parametrize(
    "sockets",
    [
        (),
        (PassedSocket(3),),
        (PassedSocket(3, "web", owned=False), PassedSocket(7, None, owned=True)),
        (PassedSocket(12, "admin"), PassedSocket(4, "web.v6", owned=False)),
    ],
)
def test_what_the_old_master_writes_the_new_master_reads_back(
    sockets: tuple[PassedSocket, ...],
) -> None:
    written = Handoff(old_master=4242, sockets=sockets)
    assert decode(encode(written)) == written


@pytest.mark.parametrize("side", [PassedSocket(9), PassedSocket(6, "health", owned=False)])
def test_the_side_listener_travels_apart_and_reads_back(side: PassedSocket) -> None:
    written = Handoff(4242, (PassedSocket(3),), side)
    env = encode(written)
    assert env[ENV_SIDE_FD] == f"{side.fd}:{side.name or ''}:{int(side.owned)}"
    assert env[ENV_INHERIT_FDS] == "3::1", "never among the application's sockets"
    assert decode(env) == written
    assert ENV_SIDE_FD not in encode(Handoff(4242, (PassedSocket(3),)))


def test_a_malformed_side_entry_is_refused_naming_its_variable() -> None:
    env = {ENV_INHERIT_FDS: "3", ENV_OLD_MASTER: "17", ENV_SIDE_FD: "x:y"}
    with pytest.raises(HandoffError, match=f"{ENV_SIDE_FD} entry 'x:y' is not FD:NAME:OWNED"):
        decode(env)


def test_the_variables_are_the_documented_ones_and_not_settings() -> None:
    env = encode(Handoff(17, (PassedSocket(3, "web", owned=False), PassedSocket(5))))
    assert env == {"_WSGID_INHERIT_FDS": "3:web:0,5::1", "_WSGID_OLD_MASTER": "17"}
    assert not any(name.startswith("WSGID_") for name in env)


def test_without_the_variables_there_is_no_handoff() -> None:
    assert decode({}) is None
    assert decode({"PATH": "/usr/bin", "LISTEN_FDS": "2"}) is None


def test_a_bare_fd_list_as_written_before_names_were_carried_is_still_read() -> None:
    read = decode({ENV_INHERIT_FDS: "3,4", ENV_OLD_MASTER: "99"})
    assert read == Handoff(99, (PassedSocket(3, None, True), PassedSocket(4, None, True)))


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({ENV_INHERIT_FDS: "3:web:1"}, [ENV_INHERIT_FDS, ENV_OLD_MASTER]),
        ({ENV_OLD_MASTER: "17"}, [ENV_OLD_MASTER, ENV_INHERIT_FDS]),
        ({ENV_INHERIT_FDS: "3::1", ENV_OLD_MASTER: ""}, [ENV_OLD_MASTER, "''"]),
        ({ENV_INHERIT_FDS: "3::1", ENV_OLD_MASTER: "0"}, [ENV_OLD_MASTER, "'0'"]),
        ({ENV_INHERIT_FDS: "3::1", ENV_OLD_MASTER: "-5"}, [ENV_OLD_MASTER, "'-5'"]),
        ({ENV_INHERIT_FDS: "3::1", ENV_OLD_MASTER: "pid"}, [ENV_OLD_MASTER, "'pid'"]),
        ({ENV_INHERIT_FDS: "x:web:1", ENV_OLD_MASTER: "17"}, [ENV_INHERIT_FDS, "'x:web:1'"]),
        ({ENV_INHERIT_FDS: "3:web:1,", ENV_OLD_MASTER: "17"}, [ENV_INHERIT_FDS, "''"]),
        ({ENV_INHERIT_FDS: "3:web:yes", ENV_OLD_MASTER: "17"}, [ENV_INHERIT_FDS, "'3:web:yes'"]),
        ({ENV_INHERIT_FDS: "3:a:b:1", ENV_OLD_MASTER: "17"}, [ENV_INHERIT_FDS, "'3:a:b:1'"]),
        ({ENV_INHERIT_FDS: "\u00b3::1", ENV_OLD_MASTER: "17"}, [ENV_INHERIT_FDS]),
        ({ENV_INHERIT_FDS: "-3::1", ENV_OLD_MASTER: "17"}, [ENV_INHERIT_FDS, "'-3::1'"]),
    ],
)
def test_a_malformed_handoff_is_refused_naming_the_variable_and_the_value(
    environ: dict[str, str], names: list[str]
) -> None:
    with pytest.raises(HandoffError) as raised:
        decode(environ)
    message = str(raised.value)
    assert message.startswith("upgrade hand-off: "), message
    for name in names:
        assert name in message, message


def test_take_removes_the_variables_even_when_they_do_not_parse() -> None:
    environ = {ENV_INHERIT_FDS: "3:web:0", ENV_OLD_MASTER: "17", "HOME": "/root"}
    assert take(environ) == Handoff(17, (PassedSocket(3, "web", owned=False),))
    assert environ == {"HOME": "/root"}
    environ = {ENV_INHERIT_FDS: "3", ENV_OLD_MASTER: "17", ENV_SIDE_FD: "5::1", "HOME": "/"}
    assert take(environ) == Handoff(17, (PassedSocket(3),), PassedSocket(5))
    assert environ == {"HOME": "/"}
    environ = {ENV_INHERIT_FDS: "junk", ENV_OLD_MASTER: "17", "HOME": "/root"}
    with pytest.raises(HandoffError):
        take(environ)
    assert environ == {"HOME": "/root"}


def test_from_upgrade_tells_a_master_execd_by_an_upgrade() -> None:
    assert handoff.from_upgrade({ENV_OLD_MASTER: "17", ENV_INHERIT_FDS: ""})
    assert not handoff.from_upgrade({})


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def test_adopt_wraps_each_passed_listening_socket_with_its_name_and_ownership(
    listening: socket.socket,
) -> None:
    fd = os.dup(listening.fileno())
    [adopted] = Handoff(17, (PassedSocket(fd, "web", owned=False),)).adopt()
    try:
        assert adopted.sock.fileno() == fd
        assert adopted.sock.getsockname() == listening.getsockname()
        assert (adopted.name, adopted.owned) == ("web", False)
        assert not adopted.sock.getblocking()
    finally:
        adopted.sock.close()


def test_adopt_refuses_a_descriptor_that_is_not_a_listening_socket() -> None:
    read_fd, write_fd = os.pipe()
    try:
        with pytest.raises(ListenerError, match=f"^{ENV_INHERIT_FDS}: fd {read_fd} is not a"):
            Handoff(17, (PassedSocket(read_fd),)).adopt()
    finally:
        os.close(read_fd)
        os.close(write_fd)


# Run by the exec'd "new master": reads the hand-off as the master does and reports it.
_NEW_MASTER = """
import json, os, sys
from wsgid import handoff
passed = handoff.take(os.environ)
adopted = passed.adopt()
side = passed.adopt_side()
json.dump({
    "old_master": passed.old_master,
    "sockets": [[s.name, s.owned, s.sock.getsockname()] for s in adopted],
    "side": [[s.name, s.owned, s.sock.getsockname()] for s in side],
    "left": sorted(k for k in os.environ if k.startswith("_WSGID_")),
    "cwd": os.getcwd(),
}, sys.stdout)
"""


def test_exec_new_master_hands_real_sockets_to_the_program_it_execs(
    listening: socket.socket, tmp_path: Path
) -> None:
    unix_path = str(tmp_path / "s.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(unix_path)
    unix.listen()
    listeners = [
        Listener(listening, BindSpec("127.0.0.1:0", socket.AF_INET, ("127.0.0.1", 0)), True),
        Listener(unix, BindSpec("systemd:api", socket.AF_UNIX, None, name="api"), False),
    ]
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the old master's upgrade child
        try:
            os.dup2(write_fd, 1)
            # The new master is run as the old one was started: here, by this program.
            sys.orig_argv = [sys.executable, "-c", _NEW_MASTER]
            handoff.exec_new_master(
                listeners[:1], old_master=os.getppid(), cwd=str(tmp_path), side=listeners[1]
            )
        finally:
            os._exit(1)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as output:
        report = json.loads(output.read())
    _, status = os.waitpid(pid, 0)
    unix.close()
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == {
        "old_master": os.getpid(),
        "sockets": [[None, True, list(listening.getsockname())]],
        "side": [["api", False, unix_path]],
        "left": [],
        "cwd": str(tmp_path),
    }
    # The sockets stay inheritable only in the child that exec'd: not in this process.
    assert not os.get_inheritable(listening.fileno())


def test_the_app_metrics_directory_the_old_master_made_travels_and_is_taken_out() -> None:
    written = Handoff(4242, (PassedSocket(3),), None, "/tmp/wsgid-prometheus-x")
    env = encode(written)
    assert env["_WSGID_PROMETHEUS_DIR"] == "/tmp/wsgid-prometheus-x"
    assert decode(env) == written
    taken = handoff.take(env)
    assert taken == written and "_WSGID_PROMETHEUS_DIR" not in env
    assert "_WSGID_PROMETHEUS_DIR" not in encode(Handoff(4242, (PassedSocket(3),)))
