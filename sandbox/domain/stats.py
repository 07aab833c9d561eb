"""Counters and the ordered request log, so tests can prove what was called and created."""

from __future__ import annotations

from collections import Counter, deque

from sandbox.domain.jsontypes import Obj


class Stats:
    """Requests by method, path template and status, plus the request log."""

    def __init__(self, log_size: int = 100_000) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.log: deque[Obj] = deque(maxlen=log_size)
        self.in_flight = 0

    def record(
        self,
        *,
        method: str,
        path: str,
        template: str,
        status: int,
        request_id: str,
        idempotency_key: str | None,
        object_id: str | None,
        replayed: bool,
        sandbox_time: int,
        fault: str | None,
    ) -> None:
        self.requests[(method, template, status)] += 1
        self.log.append(
            {
                "request_id": request_id,
                "method": method,
                "path": path,
                "template": template,
                "status": status,
                "idempotency_key": idempotency_key,
                "object_id": object_id,
                "replayed": replayed,
                "fault": fault,
                "sandbox_time": sandbox_time,
            }
        )

    def summary(self) -> list[Obj]:
        return [
            {"method": m, "path": t, "status": s, "count": n}
            for (m, t, s), n in sorted(self.requests.items())
        ]

    def clear(self) -> None:
        self.requests.clear()
        self.log.clear()
