"""The emulator's HTTP surface: the operator's API, the blob stand-in, and `/_emulator/` admin calls.

Errors follow Django REST framework's shape (`{"detail": ...}`), the likely stack behind the real
extranet. Admin calls are loopback-only and never share a prefix with the operator's API.
"""

from __future__ import annotations

import base64
import ipaddress

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .config import EmulatorConfig, FaultConfig
from .faults import FaultInjector
from .openapi import openapi_document
from .store import EventStore, ListQuery, decode_cursor

SORT_KEYS = ("creation_date", "event_date")
DIRECTIONS = ("asc", "desc")
OBJECT_TYPES = ("order", "service")
POSTING_GROUPS = ("admin", "delivery")
# The reference says the default order is descending event_date (its object-filtered example
# contradicts it: see docs/api-contract.md). We follow the text.
DEFAULT_SORT, DEFAULT_DIRECTION = "event_date", "desc"


def _json(payload, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json", headers=headers)


def _error(status: int, detail: str, code: str, headers: dict | None = None) -> Response:
    return _json({"detail": detail, "code": code}, status, headers)


class EmulatorApp:
    """Holds the store and the fault injector; `asgi` is what uvicorn serves."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = EventStore(config)
        routes = [
            Route("/api/events/", self.list_events, methods=["GET"]),
            Route("/api/events", self.list_events, methods=["GET"]),
            Route("/api/events/{event_uuid}/", self.get_event, methods=["GET"]),
            Route("/api/events/{event_uuid}", self.get_event, methods=["GET"]),
            Route("/api/v2/orders/{order_uuid}/events/info", self.post_info, methods=["POST"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/blob/{blob:path}", self.blob, methods=["GET"]),
            Route("/_emulator/status", self.admin_status, methods=["GET"]),
            Route("/_emulator/advance", self.admin_advance, methods=["POST"]),
            Route("/_emulator/speed", self.admin_speed, methods=["POST"]),
            Route("/_emulator/ground-truth", self.admin_ground_truth, methods=["GET"]),
            Route("/_emulator/orders", self.admin_orders, methods=["GET"]),
            Route("/_emulator/faults", self.admin_faults, methods=["GET", "POST"]),
        ]
        self.starlette = Starlette(routes=routes)
        self.faults = FaultInjector(self.starlette, config.faults)
        self.asgi = self.faults
        self.listings_served = 0  # answered listings: tests time a kill by a client's progress

    # -- helpers ------------------------------------------------------------------------------

    def _group(self, request: Request) -> str | None:
        """The caller's group, from a Bearer token, Basic auth (password = token) or X-API-Key."""
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        token = None
        if scheme.lower() in ("bearer", "token"):
            token = value.strip()
        elif scheme.lower() == "basic":
            try:
                token = base64.b64decode(value.strip()).decode().partition(":")[2]
            except Exception:
                token = None
        elif request.headers.get("x-api-key"):
            token = request.headers["x-api-key"]
        return self.config.tokens.get(token) if token else None

    def _unauthorized(self) -> Response:
        return _error(
            401,
            "Authentication credentials were not provided or are invalid.",
            "not_authenticated",
            {"WWW-Authenticate": 'Bearer realm="api"'},
        )

    @staticmethod
    def _base_url(request: Request) -> str:
        return f"{request.url.scheme}://{request.url.netloc}"

    @staticmethod
    def _loopback_only(request: Request) -> Response | None:
        host = request.client.host if request.client else ""
        try:
            if ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
        return _error(403, "Emulator admin calls are only accepted from loopback.", "forbidden")

    # -- operator API -------------------------------------------------------------------------

    async def list_events(self, request: Request) -> Response:
        if self._group(request) is None:
            return self._unauthorized()
        params = request.query_params
        sort = params.get("sort", DEFAULT_SORT)
        if sort not in SORT_KEYS:
            return _error(400, f"Unknown sort key {sort!r}; use one of {list(SORT_KEYS)}.", "invalid_sort")
        direction = params.get("direction", DEFAULT_DIRECTION if "sort" not in params else "asc")
        if direction not in DIRECTIONS:
            return _error(400, f"Unknown direction {direction!r}; use 'asc' or 'desc'.", "invalid_direction")
        raw_size = params.get("size", params.get("limit"))
        size = self.config.default_page_size
        if raw_size is not None:
            if not raw_size.isdigit() or not 1 <= int(raw_size) <= self.config.max_page_size:
                return _error(
                    400,
                    f"Page size must be an integer from 1 to {self.config.max_page_size}, got {raw_size!r}.",
                    "invalid_size",
                )
            size = int(raw_size)
        after_us = None
        if params.get("after"):  # an empty `after=` is no cursor, as the OpenAPI schema allows
            try:
                after_us = decode_cursor(params["after"])
            except ValueError as exc:
                return _error(400, f"Invalid 'after' cursor: {exc}.", "invalid_cursor")
        object_type = params.get("object_type")
        if object_type is not None and object_type not in OBJECT_TYPES:
            return _error(400, f"Unknown object_type {object_type!r}; use 'order' or 'service'.", "invalid_object_type")
        query = ListQuery(sort, direction, after_us, size, object_type, params.get("object_uuid"))
        _, events = self.store.list_events(query)
        body = self.store.page_bytes(events, sort, self._base_url(request))
        self.listings_served += 1
        return Response(body, media_type="application/json")

    async def get_event(self, request: Request) -> Response:
        if self._group(request) is None:
            return self._unauthorized()
        ev = self.store.get(request.path_params["event_uuid"])
        if ev is None:
            return _error(404, "Not found.", "not_found")
        return Response(self.store.body(ev, self._base_url(request)), media_type="application/json")

    async def post_info(self, request: Request) -> Response:
        group = self._group(request)
        if group is None:
            return self._unauthorized()
        if group not in POSTING_GROUPS:
            return _error(
                403, "You must belong to the 'admin' or 'delivery' group to post messages.", "permission_denied"
            )
        order_uuid = request.path_params["order_uuid"]
        if not self.store.knows_order(order_uuid):
            return _error(404, "Not found.", "not_found")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "Body must be a JSON object.", "parse_error")
        problem = _check_info_body(body)
        if problem:
            return _error(400, problem, "invalid")
        wait_s = self.store.info_wait_s(order_uuid)
        if wait_s > 0:
            retry_after = max(1, int(wait_s + 0.999))
            return _error(
                429,
                f"Request was throttled. Expected available in {retry_after} seconds.",
                "throttled",
                {"Retry-After": str(retry_after)},
            )
        ev = self.store.post_info(order_uuid, body["message"], body.get("stop_deferred"))
        return Response(self.store.body(ev, self._base_url(request)), status_code=201, media_type="application/json")

    async def openapi(self, request: Request) -> Response:
        return _json(openapi_document(self.config))

    async def blob(self, request: Request) -> Response:
        blob = request.path_params["blob"]
        token = request.query_params.get("se", "")
        why = self.store.check_blob_token(blob, token)
        if why is not None:
            xml = (
                '<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>'
                f"<Message>Server failed to authenticate the request. {why}</Message></Error>"
            )
            return Response(xml, status_code=403, media_type="application/xml")
        return Response(self.store.blob_content(blob), media_type="application/pdf")

    # -- admin --------------------------------------------------------------------------------

    async def admin_status(self, request: Request) -> Response:
        if denied := self._loopback_only(request):
            return denied
        status = self.store.status()
        status["config"] = self.config.to_dict()
        status["faults_injected"] = self.faults.injected
        return _json(status)

    async def admin_advance(self, request: Request) -> Response:
        if denied := self._loopback_only(request):
            return denied
        try:
            seconds = float(request.query_params.get("seconds", "0"))
            if seconds < 0:
                raise ValueError
        except ValueError:
            return _error(400, "'seconds' must be a non-negative number.", "invalid")
        self.store.advance(seconds)
        return _json(self.store.status())

    async def admin_speed(self, request: Request) -> Response:
        if denied := self._loopback_only(request):
            return denied
        try:
            self.store.clock.set_speed(float(request.query_params.get("value", "")))
        except ValueError:
            return _error(400, "'value' must be a non-negative number (0 freezes the clock).", "invalid")
        return _json(self.store.status())

    async def admin_ground_truth(self, request: Request) -> Response:
        if denied := self._loopback_only(request):
            return denied
        base = self._base_url(request)
        return Response(
            self.store.page_bytes(self.store.visible(), "creation_date", base), media_type="application/json"
        )

    async def admin_orders(self, request: Request) -> Response:
        if denied := self._loopback_only(request):
            return denied
        from .timefmt import iso

        return _json(
            [
                {
                    "order_uuid": o.order_uuid,
                    "kind": o.kind,
                    "kosc_order_ref": o.kosc_order_ref,
                    "submitted_at": iso(o.submitted_us),
                    "outcome": o.outcome,
                    "service_uuid": o.service_uuid,
                }
                for o in self.store.orders()
            ]
        )

    async def admin_faults(self, request: Request) -> Response:
        if denied := self._loopback_only(request):
            return denied
        if request.method == "POST":
            try:
                values = orjson.loads(await request.body() or b"{}")
                config = FaultConfig.from_dict(values)
            except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
                return _error(400, f"Invalid fault settings: {exc}", "invalid")
            self.faults.configure(config)
        from dataclasses import asdict

        return _json({"faults": asdict(self.faults.config), "injected": self.faults.injected})


def _check_info_body(body) -> str | None:
    if not isinstance(body, dict):
        return "Body must be a JSON object."
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        return "'message' is required and must be a non-empty string."
    if "stop_deferred" in body and not isinstance(body["stop_deferred"], bool):
        return "'stop_deferred' must be a boolean."
    extra = set(body) - {"message", "stop_deferred"}
    if extra:
        return f"Unknown fields: {sorted(extra)}."
    return None


def create_app(config: EmulatorConfig | None = None) -> EmulatorApp:
    return EmulatorApp(config or EmulatorConfig())
