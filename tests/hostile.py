"""A stand-in for the Covage API written from the reference alone (not the emulator), that can be
told to misbehave: the feed it serves is a plain list, served as it is, so duplicates, ties and
bad bytes are whatever the test puts in it.

Paging as the reference reads: `sort=creation_date&direction=asc`, `after` strictly later than
the creation_date its `sort_value` encodes, the page size from `size` or `limit` (which ones it
honours is a setting), 100 by default.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route


def sort_value(creation_date: str) -> str:
    return base64.b64encode(orjson.dumps([creation_date])).decode()


def event(n: int, **changes) -> dict:
    """An API-shaped event created n seconds after 2026-01-01 (n may be a float)."""
    seconds = float(n)
    created = f"2026-01-01T{int(seconds // 3600):02d}:{int(seconds // 60 % 60):02d}:{seconds % 60:09.6f}"
    item = {
        "model": "event",
        "event_uuid": f"evt{int(n):05d}",
        "type": "order-running",
        "object_type": "order",
        "object_uuid": f"order-{int(n) // 3}",
        "event_date": created,
        "creation_date": created,
        "modification_date": created,
        "data": None,
    }
    item.update(changes)
    if "sort_value" not in changes:
        item["sort_value"] = sort_value(item["creation_date"])
    return item


@dataclass
class Raw:
    """An item served as these exact bytes (bad bytes, nesting), placed at `creation_date`."""

    creation_date: str
    body: bytes


@dataclass
class HostileAPI:
    feed: list = field(default_factory=list)  # dicts or Raw, in the order served
    honour: tuple[str, ...] = ("size", "limit")  # which page-size parameters it reads
    default_page: int = 100
    ignore_after: bool = False
    redirect: tuple[int, str] | None = None  # (status, base URL) for every listing
    drip_s: float = 0.0  # seconds between bytes of a listing's body
    token: str = "hostile-token"
    refusal: int = 401  # the status of a listing asked with a wrong token
    files: dict[str, bytes] = field(default_factory=dict)  # served at /files/NAME?se=...
    calls: int = 0
    seen_credentials: list[str] = field(default_factory=list)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        given = request.headers.get("x-api-key") or header.partition(" ")[2]
        if header.lower().startswith("basic "):
            given = base64.b64decode(given).decode().partition(":")[2]
        if header or request.headers.get("x-api-key"):
            self.seen_credentials.append(given)
        return given == self.token

    def page(self, params) -> bytes:
        size = self.default_page
        for name in self.honour:
            if name in params:
                size = int(params[name])
                break
        after = params.get("after")
        start = 0
        if after and not self.ignore_after:
            instant = _instant(orjson.loads(base64.b64decode(after))[0])
            start = next((i for i, it in enumerate(self.feed) if _instant(_created(it)) > instant), len(self.feed))
        chosen = self.feed[start : start + size]
        return b"[" + b",".join(_bytes(it) for it in chosen) + b"]"

    async def listing(self, request: Request) -> Response:
        self.calls += 1
        if self.redirect is not None:
            status, target = self.redirect
            return RedirectResponse(f"{target}{request.url.path}?{request.url.query}", status_code=status)
        if not self._authorised(request):
            return JSONResponse({"detail": "Invalid token."}, status_code=self.refusal)
        body = self.page(request.query_params)
        if not self.drip_s:
            return Response(body, media_type="application/json")

        async def drip():
            for i in range(len(body)):
                yield body[i : i + 1]
                await asyncio.sleep(self.drip_s)

        return StreamingResponse(drip(), media_type="application/json", headers={"content-length": str(len(body))})

    async def one(self, request: Request) -> Response:
        if not self._authorised(request):
            return JSONResponse({"detail": "Invalid token."}, status_code=401)
        uuid = request.path_params["uuid"]
        found = [it for it in self.feed if isinstance(it, dict) and it.get("event_uuid") == uuid]
        if not found:
            return JSONResponse({"detail": "Not found."}, status_code=404)
        item = {k: v for k, v in found[-1].items() if k != "sort_value"}
        return JSONResponse(item)

    async def file(self, request: Request) -> Response:
        body = self.files.get(request.path_params["name"])
        if body is None or not request.query_params.get("se"):
            return Response(b"<Error>AuthenticationFailed</Error>", status_code=403, media_type="application/xml")
        return Response(body, media_type="application/pdf")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/events/", self.listing),
                Route("/api/events/{uuid}/", self.one),
                Route("/files/{name}", self.file),
            ]
        )


def _created(item) -> str:
    return item.creation_date if isinstance(item, Raw) else item["creation_date"]


def _instant(text: str) -> datetime:
    """The instant a creation_date names, however it is spelt (`Z`, an offset, fewer digits)."""
    value = datetime.fromisoformat(text)
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _bytes(item) -> bytes:
    return item.body if isinstance(item, Raw) else orjson.dumps(item)


class Served:
    """An ASGI app on a loopback address and a free port, in a thread."""

    def __init__(self, app, host: str = "127.0.0.1") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.url = f"http://{host}:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> Served:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the stand-in server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
