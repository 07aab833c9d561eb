"""What a handler gets: validated params, path params, the sandbox and request facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.domain.jsontypes import Obj

if TYPE_CHECKING:
    from sandbox.domain.runtime import Sandbox
    from sandbox.domain.store import Store


@dataclass
class Ctx:
    """One API call, control call or clock step; events it emits carry its request."""

    sb: Sandbox
    params: dict[str, Any] = field(default_factory=dict)
    path: dict[str, str] = field(default_factory=dict)
    request_id: str | None = None
    idempotency_key: str | None = None
    base_url: str = ""
    stripe_account: str | None = None
    created_id: str | None = None
    # The frozen time of the test clock the work belongs to (None: the global clock).
    frozen_time: int | None = None

    @property
    def store(self) -> Store:
        return self.sb.store

    @property
    def now(self) -> int:
        if self.frozen_time is not None:
            return self.frozen_time
        return self.sb.clock.now()

    @property
    def url_base(self) -> str:
        return self.base_url or self.sb.public_url

    def emit(
        self,
        event_type: str,
        obj: Obj,
        *,
        previous: Obj | None = None,
        account: str | None = None,
    ) -> str:
        return self.sb.bus.emit(
            event_type,
            obj,
            previous=previous,
            account=account,
            request_id=self.request_id,
            idempotency_key=self.idempotency_key,
        )
