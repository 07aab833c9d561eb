"""Shared test helpers: a webhook receiver, polling with a deadline, small builders."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
import stripe

API_KEY = "sk_test_sandbox_suite"
PLATFORM_SECRET = "whsec_sandbox_platform_0001"
CONNECT_SECRET = "whsec_sandbox_connect_0002"

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float = 10.0, what: str = "") -> T:
    """Poll `check` until it returns something truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
        time.sleep(0.02)  # the poll interval of a wait on a condition


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: str
    status: int

    @property
    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    """An HTTP server on 127.0.0.1 that records webhook deliveries.

    POSTs are recorded and answered 200 (or 500 while `fail_next` has some left); GETs
    answer a tiny HTML page, so a browser can land on a `success_url` or `return_url`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self._failures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                with receiver._lock:
                    status = 500 if receiver._failures > 0 else 200
                    if status == 500:
                        receiver._failures -= 1
                    receiver._deliveries.append(
                        Delivery(self.path, dict(self.headers.items()), body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                page = f"<html><body><h1 id='landed'>Landed on {self.path}</h1></body></html>"
                data = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, count: int) -> None:
        """Answer the next `count` deliveries with 500."""
        with self._lock:
            self._failures = count

    def clear(self) -> None:
        with self._lock:
            self._deliveries.clear()
            self._failures = 0

    def deliveries(self, path: str | None = None, ok_only: bool = True) -> list[Delivery]:
        with self._lock:
            return [
                d
                for d in self._deliveries
                if (path is None or d.path == path) and (d.status == 200 or not ok_only)
            ]

    def events(self, path: str | None = None) -> list[dict[str, Any]]:
        return [d.event for d in self.deliveries(path)]

    def wait_for_event(
        self,
        event_type: str,
        object_id: str | None = None,
        path: str = "/platform",
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """The first delivered event of that type (about that object), polling."""

        def find() -> dict[str, Any] | None:
            for event in self.events(path):
                if event["type"] == event_type and (
                    object_id is None or event["data"]["object"].get("id") == object_id
                ):
                    return event
            return None

        return wait_for(find, timeout, f"{event_type} for {object_id} at {path}")

    def types_for(self, path: str, predicate: Callable[[dict[str, Any]], bool]) -> list[str]:
        return [e["type"] for e in self.events(path) if predicate(e)]


def raw(params: dict[str, Any]) -> Any:
    """Params passed as given, past the library's typed params (e.g. deliberately invalid)."""
    return params


def make_price(
    client: stripe.StripeClient, amount: int = 2000, interval: str = "month", **extra: Any
) -> stripe.Price:
    """A recurring price on a new product."""
    product = client.v1.products.create(params={"name": f"Plan {amount}/{interval}"})
    return client.v1.prices.create(
        params=raw(
            {
                "product": product.id,
                "unit_amount": amount,
                "currency": "usd",
                "recurring": {"interval": interval},
                **extra,
            }
        )
    )


def make_customer(
    client: stripe.StripeClient, card: str | None = "pm_card_visa", email: str = "ada@example.com"
) -> stripe.Customer:
    """A customer, with `card` attached as the invoice default payment method."""
    customer = client.v1.customers.create(params={"email": email})
    if card is not None:
        pm = client.v1.payment_methods.attach(card, params={"customer": customer.id})
        customer = client.v1.customers.update(
            customer.id, params={"invoice_settings": {"default_payment_method": pm.id}}
        )
    return customer


def control(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=f"{base_url}/_sandbox", timeout=10.0)


def advance(ctl: httpx.Client, seconds: int) -> dict[str, Any]:
    response = ctl.post("/clock/advance", json={"seconds": seconds})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def sandbox_events(ctl: httpx.Client, event_type: str | None = None) -> list[dict[str, Any]]:
    """Every event the sandbox emitted (platform and Connect), oldest first."""
    params = {"type": event_type} if event_type else {}
    data: list[dict[str, Any]] = ctl.get("/events", params=params).json()["data"]
    return data


def types_about(ctl: httpx.Client, object_ids: set[str]) -> list[str]:
    """Event types, in emission order, whose object is one of `object_ids`."""
    return [e["type"] for e in sandbox_events(ctl) if e["data"]["object"].get("id") in object_ids]
