"""A local SMTP sink (aiosmtpd on 127.0.0.1) that keeps every message as an .eml file.

`onramp dev`, the benchmarks and the tests run it (through `devstack.supervisor`) so a
person or a test can read what the service sent. Run alone with
`python -m devstack.smtp_sink --dir .onramp/mail --port 1025`.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import re
import socket
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

_UNSAFE = re.compile(r"[^A-Za-z0-9@._-]+")


class _Handler:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data: bytes = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        message_id = str(parsed.get("Message-ID", "")).strip("<> ") or uuid.uuid4().hex
        with self._lock:
            self._count += 1
            name = f"{time.time_ns()}-{self._count:06d}-{_UNSAFE.sub('_', message_id)[:80]}.eml"
        # Written aside, then renamed: a reader of the directory never sees half a message.
        partial = self.directory / f".{name}.partial"
        partial.write_bytes(data)
        partial.rename(self.directory / name)
        return "250 Message accepted for delivery"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class SmtpSink:
    """The sink; `start()` binds the port (0 picks a free one), `stop()` closes it."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 1025) -> None:
        self.directory = directory
        self.host = host
        self.directory.mkdir(parents=True, exist_ok=True)
        # aiosmtpd checks its own start by connecting to the port, so it needs a real one.
        self.port = port or _free_port(host)
        self._controller = Controller(_Handler(directory), hostname=host, port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def messages(self) -> list[EmailMessage]:
        """Every stored message, oldest first."""
        return read_messages(self.directory)

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def read_messages(directory: Path) -> list[EmailMessage]:
    """Every message a sink stored in `directory`, oldest first."""
    found = []
    for path in sorted(directory.glob("*.eml")):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        found.append(parsed)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="onramp's local SMTP sink")
    parser.add_argument("--dir", default=".onramp/mail", help="where .eml files are kept")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    args = parser.parse_args(argv)
    with SmtpSink(Path(args.dir), args.host, args.port) as sink:
        print(f"smtp sink listening on {sink.url}, keeping mail in {sink.directory}")  # noqa: T201
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
