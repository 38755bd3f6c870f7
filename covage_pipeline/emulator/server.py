"""Runs the emulator under uvicorn: in the foreground for the CLI, in a thread for tests and demos.

The thread runner binds the socket itself (port 0 picks a free one) so a caller knows the URL
before the first request and no two test sessions race for a port.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from .app import EmulatorApp
from .config import EmulatorConfig


class RunningEmulator:
    """An emulator served on loopback; `url` is its base URL, `app.store` its data."""

    def __init__(self, app: EmulatorApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        config = uvicorn.Config(app.asgi, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def store(self):
        return self.app.store

    def start(self, timeout: float = 30.0) -> RunningEmulator:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@contextmanager
def running_emulator(
    config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningEmulator]:
    emulator = RunningEmulator(EmulatorApp(config or EmulatorConfig()), host, port).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def serve(config: EmulatorConfig, host: str, port: int, replay: list[dict] | None = None) -> None:
    """Serves in the foreground until interrupted; `replay` events are served besides the generated ones."""
    app = EmulatorApp(config)
    if replay:
        app.store.replay(replay)
    uvicorn.run(app.asgi, host=host, port=port, log_level="info", lifespan="off")
