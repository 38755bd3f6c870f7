"""A faithful local emulator of the Covage (Kosc) events API, for tests, demos and benchmarks.

It must never be imported by the pipeline itself: the pipeline only knows the API over HTTP.
"""

from .app import EmulatorApp, create_app
from .config import EmulatorConfig, FaultConfig
from .server import RunningEmulator, running_emulator, serve
from .store import EventStore, decode_cursor, encode_cursor

__all__ = [
    "EmulatorApp",
    "EmulatorConfig",
    "EventStore",
    "FaultConfig",
    "RunningEmulator",
    "create_app",
    "decode_cursor",
    "encode_cursor",
    "running_emulator",
    "serve",
]
