"""A NOTIFY_SOCKET receiver: what systemd's manager side of sd_notify(3) sees, for tests.

It binds an AF_UNIX datagram socket (a path, or an abstract `@name`), asks the kernel for the
sender's credentials on every datagram (SO_PASSCRED, as systemd does), and records each message
with its arrival time and sender pid from a background thread. Descriptors passed along
(SCM_RIGHTS, e.g. `BARRIER=1`) are closed at once, which is what releases a sender blocked in
sd_notify_barrier().
"""

from __future__ import annotations

import array
import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    at: float  # time.monotonic() on arrival
    pid: int  # the sender, from SCM_CREDENTIALS
    fields: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self.fields

    def __str__(self) -> str:
        return f"pid {self.pid}: " + " ".join(f"{k}={v}" for k, v in self.fields.items())


class NotifyReceiver:
    """Listens on `address` (a path, or `@name` for the abstract namespace) until close()."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.05)
        self._messages: list[Message] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="notify-receiver", daemon=True)
        self._thread.start()

    @property
    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": self.address}

    def _run(self) -> None:
        ancillary = socket.CMSG_SPACE(struct.calcsize("3i")) + socket.CMSG_SPACE(64 * 4)
        while not self._closed:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(65536, ancillary)
            except TimeoutError:
                continue
            except OSError:
                return
            pid = 0
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:12])[0]
                elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                    for fd in fds:
                        os.close(fd)
            fields = dict(
                line.split("=", 1)
                for line in data.decode("utf-8", "replace").splitlines()
                if "=" in line
            )
            with self._lock:
                self._messages.append(Message(time.monotonic(), pid, fields))

    def messages(self) -> list[Message]:
        with self._lock:
            return list(self._messages)

    def since(self, index: int) -> list[Message]:
        return self.messages()[index:]

    def wait_for(
        self,
        match: Callable[[Message], bool],
        timeout: float,
        start: int = 0,
        what: str = "",
    ) -> Message:
        """The first message from index `start` on that satisfies `match`; fail after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages()[start:]:
                if match(message):
                    return message
            if time.monotonic() >= deadline:
                got = "\n  ".join(str(m) for m in self.messages()[start:]) or "(nothing)"
                raise AssertionError(
                    f"no notify message {what or 'matching'} within {timeout}s; got:\n  {got}"
                )
            time.sleep(0.01)

    def wait_key(self, key: str, timeout: float, start: int = 0, value: str = "1") -> Message:
        return self.wait_for(
            lambda m: m.fields.get(key) == value, timeout, start, what=f"{key}={value}"
        )

    def close(self) -> None:
        self._closed = True
        self._thread.join(timeout=2)
        self.sock.close()
        if not self.address.startswith("@"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)
