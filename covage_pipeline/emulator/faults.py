"""Fault injection for the operator API: what a flaky upstream does to a consumer.

An ASGI middleware, so the faults happen on the wire (real 5xx, real 429, a socket closed in the
middle of a body, a body cut short), never as a patched client. It only touches `/api/` paths:
admin calls under `/_emulator/` and the blob stand-in always answer.
"""

from __future__ import annotations

import asyncio
import random

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
        if not (drop or truncate):
            await self.app(scope, receive, send)
            return
        self._count("drop" if drop else "truncate")
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
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


async def _respond(send, status: int, payload: dict, extra: list | None = None) -> None:
    body = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
