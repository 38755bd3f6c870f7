"""Fault injection for the operator API: what a flaky upstream does to a consumer.

An ASGI middleware, so the faults happen on the wire (real 5xx, real 429, a socket closed in the
middle of a body, a body cut short), never as a patched client. It only touches `/api/` paths:
admin calls under `/_emulator/` and the blob stand-in always answer.
"""

from __future__ import annotations

import asyncio
import random
from urllib.parse import parse_qsl, urlencode

import orjson

from .config import FaultConfig

_BURST_STATUSES = (500, 502, 503)


class FaultInjector:
    def __init__(self, app, config: FaultConfig) -> None:
        self.app = app
        self.configure(config)

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)
        self._burst_left = 0
        self._burst_status = 0
        self.injected: dict[str, int] = {}

    def _count(self, kind: str) -> None:
        self.injected[kind] = self.injected.get(kind, 0) + 1

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/") or not self.config.any():
            await self.app(scope, receive, send)
            return
        cfg, rng = self.config, self._rng
        if scope["path"].rstrip("/") == "/api/events":
            if cfg.redirect_to:
                self._count("redirect")
                query = scope.get("query_string", b"").decode()
                location = f"{cfg.redirect_to.rstrip('/')}{scope['path']}" + (f"?{query}" if query else "")
                await _respond(send, cfg.redirect_status, {"detail": "Moved."}, [(b"location", location.encode())])
                return
            scope = self._rewrite_query(scope)
        if self._burst_left == 0 and rng.random() < cfg.error_rate:
            self._burst_left = max(1, cfg.error_burst)
            self._burst_status = rng.choice(_BURST_STATUSES)
        if self._burst_left > 0:
            self._burst_left -= 1
            self._count(str(self._burst_status))
            await _respond(send, self._burst_status, {"detail": "Server error (injected)"})
            return
        if rng.random() < cfg.rate_limit_rate:
            self._count("429")
            await _respond(
                send,
                429,
                {"detail": "Request was throttled (injected)."},
                [(b"retry-after", str(cfg.retry_after_s).encode())],
            )
            return
        if rng.random() < cfg.slow_rate:
            self._count("slow")
            await asyncio.sleep(cfg.slow_s)
        drop = rng.random() < cfg.drop_rate
        truncate = not drop and rng.random() < cfg.truncate_rate
        listing = scope["path"].rstrip("/") == "/api/events"
        reshape = (
            listing
            and not (drop or truncate)
            and (rng.random() < cfg.duplicate_rate or rng.random() < cfg.bad_bytes_rate or rng.random() < cfg.drip_rate)
        )
        if not (drop or truncate or reshape):
            await self.app(scope, receive, send)
            return
        if reshape:
            await self._reshaped(scope, receive, send)
            return
        self._count("drop" if drop else "truncate")
        start, body = await self._answer(scope, receive)
        cut = body[: max(1, len(body) // 2)]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        if drop:
            # announce the whole body, send half, then hang up: the client sees a broken read
            headers.append((b"content-length", str(len(body) + 1).encode()))
            await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
            await send({"type": "http.response.body", "body": cut, "more_body": True})
            return  # uvicorn closes the connection of a response left incomplete
        headers.append((b"content-length", str(len(cut)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
        await send({"type": "http.response.body", "body": cut})

    async def _answer(self, scope, receive) -> tuple[dict, bytes]:
        """The app's whole answer (its start message and body), to be sent otherwise."""
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        return start, b"".join(chunks)

    def _rewrite_query(self, scope):
        """The query as a server that reads the reference otherwise would see it."""
        cfg = self.config
        params = parse_qsl(scope.get("query_string", b"").decode(), keep_blank_values=True)
        drop = set()
        if cfg.ignore_after:
            drop.add("after")
        honoured = {"both": {"size", "limit"}, "size": {"size"}, "limit": {"limit"}, "neither": set()}
        drop |= {"size", "limit"} - honoured.get(cfg.page_size_param, {"size", "limit"})
        if not drop.intersection(name for name, _ in params):
            return scope
        self._count("query rewritten")
        kept = [(name, value) for name, value in params if name not in drop]
        return {**scope, "query_string": urlencode(kept).encode()}

    async def _reshaped(self, scope, receive, send) -> None:
        """A page served with one item twice, or one item's bytes broken, or slowly dripped."""
        cfg, rng = self.config, self._rng
        start, body = await self._answer(scope, receive)
        if start.get("status") == 200 and body.startswith(b"[{"):
            items = orjson.loads(body)
            if cfg.duplicate_rate and rng.random() < cfg.duplicate_rate and items:
                self._count("duplicate")
                i = rng.randrange(len(items))
                items.insert(i + 1, items[i])
                body = orjson.dumps(items)
            if cfg.bad_bytes_rate and rng.random() < cfg.bad_bytes_rate:
                self._count("bad bytes")
                body = body.replace(b'"model":"event"', b'"model":"ev\xffent"', 1)  # not UTF-8
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
        if cfg.drip_rate and rng.random() < cfg.drip_rate:
            self._count("drip")
            for i in range(len(body)):
                await send({"type": "http.response.body", "body": body[i : i + 1], "more_body": True})
                await asyncio.sleep(cfg.drip_s)
            body = b""
        await send({"type": "http.response.body", "body": body})


async def _respond(send, status: int, payload: dict, extra: list | None = None) -> None:
    body = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
