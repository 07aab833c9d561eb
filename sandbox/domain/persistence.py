"""The optional state file: whole state as JSON, written atomically and debounced."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

from sandbox.domain.jsontypes import Obj
from sandbox.domain.runtime import Sandbox

log = logging.getLogger("sandbox.persistence")


def read_state(path: Path) -> Obj | None:
    if not path.exists():
        return None
    data: Obj = json.loads(path.read_text(encoding="utf-8"))
    return data


def write_state(path: Path, text: str) -> None:
    """Write to a temporary file and rename it, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class Persister:
    """Saves the state at most every `interval` seconds while it changes, and at exit."""

    def __init__(self, sandbox: Sandbox, path: Path, interval: float) -> None:
        self.sandbox = sandbox
        self.path = path
        self.interval = interval

    def load(self) -> bool:
        data = read_state(self.path)
        if data is None:
            return False
        self.sandbox.restore(data)
        return True

    def _serialise(self) -> str:
        # Cleared before serialising: a change made while the file is written is saved next time.
        self.sandbox.store.dirty = False
        return json.dumps(self.sandbox.snapshot())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.sandbox.store.dirty:
                try:
                    text = self._serialise()
                    await asyncio.to_thread(write_state, self.path, text)
                except OSError:
                    log.exception("could not write the state file %s", self.path)

    def save_now(self) -> None:
        write_state(self.path, self._serialise())
