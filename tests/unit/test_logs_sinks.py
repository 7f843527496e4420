"""Log destinations in-process: targets, files and reopening, syslog framing and transports."""

from __future__ import annotations

import os
import select
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from wsgid.logs import sinks, targets
from wsgid.logs.sinks import FileSink, JournalSink, MultiSink, StreamSink, is_journal
from wsgid.logs.syslog import FACILITIES, SyslogSink
from wsgid.logs.targets import Target
from wsgid.workers import unpatched  # the os.write the sinks call (eventlet replaces os's)

NOW = 1_796_000_000.25


# --------------------------------------------------------------------------- targets


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-", Target("stream")),
        ("/var/log/x.log", Target("file", "/var/log/x.log")),
        ("relative.log", Target("file", "relative.log")),
        ("syslog", Target("syslog", "/dev/log", "unix")),
        ("unix:///run/log.sock", Target("syslog", "/run/log.sock", "unix")),
        (
            "unix:///run/log.sock#stream",
            Target("syslog", "/run/log.sock", "unix", socktype="stream"),
        ),
        (
            "udp://logs.example:5514",
            Target("syslog", transport="udp", host="logs.example", port=5514),
        ),
        ("udp://10.0.0.1", Target("syslog", transport="udp", host="10.0.0.1", port=514)),
        ("tcp://[::1]:6514", Target("syslog", transport="tcp", host="::1", port=6514)),
    ],
)
def test_targets_parse(value: str, expected: Target) -> None:
    assert targets.parse(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "http://x",
        "udp://",
        "udp://h:0",
        "udp://h:99999",
        "unix://",
        "unix:///x#raw",
        "tcp://[::1]x",
    ],
)
def test_bad_targets_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        targets.parse(value)


# --------------------------------------------------------------------------- files


def test_file_sink_appends_lines_mode_0640_and_reopens_on_the_same_fd(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_text("before\n")
    sink = FileSink(str(path))
    assert stat.S_IMODE(path.stat().st_mode) in (0o640, 0o644)  # existing file: left alone
    sink.write("one")
    fd = sink.fd
    path.rename(tmp_path / "app.log.1")
    sink.write("two")  # still the old file, as with logrotate before the signal
    assert sink.reopen() is None
    assert sink.fd == fd
    sink.write("three")
    sink.close()
    assert (tmp_path / "app.log.1").read_text() == "before\none\ntwo\n"
    assert path.read_text() == "three\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_file_sink_reopen_failure_is_reported_not_raised(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    directory.mkdir()
    sink = FileSink(str(directory / "x.log"))
    (directory / "x.log").unlink()
    directory.rmdir()
    problem = sink.reopen()
    assert problem is not None and "x.log" in problem
    sink.write("lost, but no exception")
    sink.close()


def test_file_sink_named_for_what_is_not_a_regular_file_is_kept_on_reopen(tmp_path: Path) -> None:
    """`--access-logfile /dev/stdout` under `user`: a worker cannot open its master's pipe
    again, and nothing there is rotated; USR1 keeps it, with no reopen_failed."""
    link = tmp_path / "stdout"
    link.symlink_to(os.devnull)
    sink = FileSink(str(link))
    link.unlink()  # opening the path again would fail
    assert sink.reopen() is None
    sink.write("still written")
    sink.close()


def test_lines_from_threads_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "t.log"
    sink = FileSink(str(path))
    line = "x" * 3000

    def writer(tag: str) -> None:
        for _ in range(200):
            sink.write(f"{tag}{line}")

    threads = [threading.Thread(target=writer, args=(str(i),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 800 and all(ln[1:] == line for ln in lines)


def test_stream_sink_writes_to_its_own_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    sink = StreamSink(fd)
    os.close(fd)  # what capture_output does to fds 1 and 2 must not matter
    sink.write("still here")
    sink.close()
    assert path.read_text() == "still here\n"


def test_multi_sink_feeds_all(tmp_path: Path) -> None:
    a, b = FileSink(str(tmp_path / "a")), FileSink(str(tmp_path / "b"))
    multi = MultiSink([a, b])
    multi.write("both")
    multi.close()
    assert (tmp_path / "a").read_text() == (tmp_path / "b").read_text() == "both\n"


# --------------------------------------------------------------------------- syslog


def test_rfc5424_framing(utc: None) -> None:
    sink = SyslogSink(
        targets.parse("udp://127.0.0.1:9"), facility="local3", tag="my app", msgid="access"
    )
    frame = sink.frame("hello\nworld", 6, NOW).decode()
    host = sink.hostname
    assert (
        frame
        == f"<158>1 2026-11-30T00:53:20.250000Z {host} my_app {os.getpid()} access - hello\nworld"
    )


def test_rfc3164_framing_on_unix_sockets_by_default(utc: None) -> None:
    sink = SyslogSink(targets.parse("syslog"), facility="daemon", tag="wsgid", msgid="error")
    assert sink.framing == "rfc3164"
    assert sink.frame("msg", 3, NOW).decode() == f"<27>Nov 30 00:53:20 wsgid[{os.getpid()}]: msg"


def test_facilities() -> None:
    assert FACILITIES["user"] == 1 and FACILITIES["local7"] == 23 and len(FACILITIES) == 20


def test_udp_one_datagram_per_record() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        port = rx.getsockname()[1]
        sink = SyslogSink(
            targets.parse(f"udp://127.0.0.1:{port}"), facility="user", tag="t", msgid="error"
        )
        sink.write("Traceback (most recent call last):\n  line\nValueError: x", 3)
        data = rx.recv(65536).decode()
        sink.close()
    assert data.startswith("<11>1 ") and data.endswith("ValueError: x")


def test_tcp_uses_octet_counting_and_reconnects() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(5)
        port = server.getsockname()[1]
        sink = SyslogSink(
            targets.parse(f"tcp://127.0.0.1:{port}"), facility="user", tag="t", msgid="error"
        )
        sink.write("a\nb", 6)
        conn, _ = server.accept()
        conn.settimeout(5)
        data = conn.recv(65536)
        length, _, message = data.partition(b" ")
        assert int(length) == len(message) and message.endswith(b"- a\nb")
        conn.close()
        for _ in range(3):  # the first writes may still go to the closed connection
            sink.write("again", 6)
            time.sleep(0.05)
        sink._retry_at = 0.0
        sink.write("again", 6)
        conn2, _ = server.accept()
        conn2.close()
        sink.close()


def test_unix_dgram_and_stream_fallback(tmp_path: Path) -> None:
    path = str(tmp_path / "dgram.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind(path)
        rx.settimeout(5)
        sink = SyslogSink(targets.parse(f"unix://{path}"), facility="user", tag="t", msgid="e")
        sink.write("one record\nwith two lines", 6)
        assert rx.recv(65536).endswith(b": one record\nwith two lines")
        sink.close()
    stream_path = str(tmp_path / "stream.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(stream_path)
        server.listen()
        server.settimeout(5)
        sink = SyslogSink(
            targets.parse(f"unix://{stream_path}"), facility="user", tag="t", msgid="e"
        )
        sink.write("streamed", 6)
        conn, _ = server.accept()
        conn.settimeout(5)
        assert conn.recv(65536).endswith(b": streamed\0")
        conn.close()
        sink.close()


def test_unreachable_syslog_drops_records_and_warns_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    sink = SyslogSink(
        targets.parse(f"unix://{tmp_path}/nobody.sock"), facility="user", tag="t", msgid="e"
    )
    for _ in range(3):
        sink.write("dropped", 6)
    err = capfd.readouterr().err
    assert err.count("records are dropped") == 1


def test_a_batch_is_one_write_to_a_file(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    sink = FileSink(str(path))
    sink.write_many(["one", "two", "x" * 70000], 6)
    sink.write_many([], 6)
    sink.close()
    assert path.read_text().splitlines() == ["one", "two", "x" * 70000]


def _read_all(fd: int) -> bytes:
    """Everything left in a pipe whose write end is closed; closes `fd`."""
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    os.close(fd)
    return data


def test_a_batch_to_a_pipe_is_cut_at_records_below_pipe_buf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read, write = os.pipe()
    sink = StreamSink(write)
    os.close(write)
    records = [f"{n:04d}" + "y" * 1000 for n in range(12)]
    writes: list[int] = []
    real = os.write

    def counting(fd: int, data: bytes) -> int:
        writes.append(len(data))
        return real(fd, data)

    monkeypatch.setattr(unpatched, "OS_WRITE", counting)
    sink.write_many(records, 6)
    monkeypatch.undo()
    sink.close()
    assert _read_all(read).decode().splitlines() == records
    assert len(writes) > 1 and all(n <= select.PIPE_BUF for n in writes)


# --------------------------------------------------------------------------- failed writes


def test_a_record_a_pipe_took_only_part_of_is_finished_before_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    read, write = os.pipe()
    sink = StreamSink(write)
    os.close(write)
    reports: list[tuple[str, str, int, int]] = []
    sink.report = lambda *report: reports.append(report)
    real = os.write
    calls = iter(["part", "full", "ok", "ok"])

    def flaky(fd: int, data: bytes) -> int:
        step = next(calls, "ok")
        if step == "part":
            return real(fd, data[:5])
        if step == "full":
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real(fd, data)

    monkeypatch.setattr(unpatched, "OS_WRITE", flaky)
    sink.write("first record")  # 5 bytes go out, the pipe is full for the rest
    sink.write("second")  # the rest of the first goes first
    monkeypatch.undo()
    sink.close()
    assert _read_all(read) == b"first record\nsecond\n"
    assert reports == [("-", "Resource temporarily unavailable", 0, 1)]


def test_a_cut_record_is_taken_back_out_of_a_file_and_written_whole_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    path = tmp_path / "access.log"
    sink = FileSink(str(path))
    sink.write("before")
    real = os.write
    room: list[int | None] = [3]  # bytes the nearly full disk still takes

    def disk(fd: int, data: bytes) -> int:
        if room[0] is None:
            return real(fd, data)
        if not room[0]:
            raise OSError(28, "No space left on device")
        written = real(fd, data[: room[0]])
        room[0] -= written
        return written

    monkeypatch.setattr(unpatched, "OS_WRITE", disk)
    sink.write_many(["one", "two"], 6)
    assert path.read_bytes() == b"before\n"  # "one" was cut: its part is gone again
    room[0] = None  # space again
    sink.write("three")
    monkeypatch.undo()
    sink.close()
    assert path.read_text().splitlines() == ["before", "one", "two", "three"]


def test_write_failures_are_reported_at_most_once_per_interval_with_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    monkeypatch.setattr(sinks, "HOLD_LIMIT", 0)  # keep nothing: every record is dropped
    sink = FileSink(str(tmp_path / "x.log"))
    reports: list[tuple[str, str, int, int]] = []
    sink.report = lambda *report: reports.append(report)

    def enospc(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(unpatched, "OS_WRITE", enospc)
    for _ in range(5):
        sink.write("lost")
    assert len(reports) == 1 and reports[0][1:] == ("No space left on device", 1, 0)
    now[0] += sinks.REPORT_INTERVAL
    sink.write("lost")
    assert reports[1][1:] == ("No space left on device", 5, 0)  # the four since, and this one
    monkeypatch.undo()
    sink.close()


def test_into_the_journal_each_record_begins_with_its_priority(tmp_path: Path) -> None:
    """journald reads `<N>` at a line's start as the entry's PRIORITY (and strips it), when
    the output is the stream JOURNAL_STREAM names; elsewhere the records are as they were."""
    path = tmp_path / "journal"
    with open(path, "wb") as out:
        st = os.fstat(out.fileno())
        named = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert is_journal(out.fileno(), named)
        assert not is_journal(out.fileno(), {"JOURNAL_STREAM": "1:2"})
        assert not is_journal(out.fileno(), {})
        sink = JournalSink(out.fileno())
        sink.write("an error", 3)
        sink.write_many(["one", "two"], 6)
        sink.close()
    assert path.read_text() == "<3>an error\n<6>one\n<6>two\n"
