"""The processes behind `covage dagster`: Dagster's code server, webserver and daemon, one process
each, the webserver and the daemon pointed at the code server by a workspace file, as Dagster
deploys them in production (`dagster code-server start`, `dagster-webserver`, `dagster-daemon`).

Why not `dagster dev`, which starts the same three: it stops all of them as soon as its daemon
exits, so the daemon could only be renewed with the UI and the code server; and the daemon's
memory grows for as long as it runs (2-6 MB an hour at a one-minute cron, measured here; reported
upstream as dagster-io/dagster#32070). Run apart, the daemon is restarted alone at a quiet moment
and the UI stays up.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .code_server import LOCATION

STARTUP_TIMEOUT_S = 180
STOP_TIMEOUT_S = 60


def _default_signals() -> None:
    # a shell that starts a job in the background leaves SIGINT ignored, and Dagster's processes
    # would then ignore it, and the SIGTERM they map to it
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class DagsterServices:
    """The three processes, in one process group of their own (with the runs the code server
    launches), so that whatever is left at the end goes with them."""

    def __init__(self, home: Path, host: str, port: int) -> None:
        self._env = {**os.environ, "DAGSTER_HOME": str(home)}
        self._bin = Path(sys.executable).parent
        self._host, self._port = host, port
        self._dir = Path(tempfile.mkdtemp(prefix="covage-dagster-"))  # short: a socket's path is
        self._socket = self._dir / "code.sock"  # limited to 107 bytes
        self._group = 0
        self._lock = threading.Lock()
        self._restarting = self._closed = False
        self.code_server = self.webserver = self.daemon = None

    def __enter__(self) -> DagsterServices:
        try:
            self.code_server = self._start(
                "dagster", "code-server", "start", "--socket", str(self._socket),
                "--location-name", LOCATION, "-m", "dagster_defs",
            )  # fmt: skip
            self._group = self.code_server.pid
            self._wait_for_code_server()
            workspace = self._dir / "workspace.yaml"  # JSON is YAML
            workspace.write_text(
                json.dumps({"load_from": [{"grpc_server": {"socket": str(self._socket), "location_name": LOCATION}}]})
            )
            self._workspace = ["--workspace", str(workspace)]
            self.webserver = self._start("dagster-webserver", "-h", self._host, "-p", str(self._port), *self._workspace)
            self.daemon = self._start_daemon()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self, command: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [str(self._bin / command), *args],
            env=self._env,
            stdin=subprocess.DEVNULL,
            preexec_fn=_default_signals,
            process_group=self._group,  # 0 for the first: a group of its own, led by it
        )

    def _start_daemon(self) -> subprocess.Popen:
        return self._start("dagster-daemon", "run", *self._workspace)

    def _wait_for_code_server(self) -> None:
        """Until it answers gRPC's health check (what Dagster's own clients wait for)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        with grpc.insecure_channel(f"unix:{self._socket}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.code_server.poll() is not None:
                    raise RuntimeError(f"Dagster's code server exited with code {self.code_server.returncode}")
                with contextlib.suppress(grpc.RpcError):
                    answer = health.Check(health_pb2.HealthCheckRequest(service="DagsterApi"), timeout=2)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Dagster's code server did not answer in {STARTUP_TIMEOUT_S} s")
                time.sleep(0.5)

    @contextlib.contextmanager
    def daemon_stopped(self) -> Iterator[None]:
        """The daemon stopped for the duration (no tick is evaluated, no queued run starts), then a
        fresh one. Schedules' ticks that fell due meanwhile are evaluated when it is back."""
        with self._lock:
            self._restarting = True
        try:
            _stop(self.daemon)
            yield
        finally:
            with self._lock:
                if not self._closed:  # stopping meanwhile: nothing to start
                    self.daemon = self._start_daemon()
                    self._restarting = False

    def exited(self) -> str | None:
        """Which process exited on its own, and how; None while all three run."""
        with self._lock:
            named = {"code server": self.code_server, "webserver": self.webserver, "daemon": self.daemon}
            for name, process in named.items():
                if process.poll() is not None and not (process is self.daemon and self._restarting):
                    return f"Dagster's {name} exited with code {process.returncode}"
        return None

    def close(self) -> None:
        """The webserver and the daemon first (their own orderly shutdown on SIGINT), then the code
        server; anything left in the group (a run in flight, its workers) is killed."""
        with self._lock:
            self._closed = self._restarting = True  # a restart under way starts nothing more
            processes = (self.webserver, self.daemon, self.code_server)
        for process in processes:
            if process is not None:
                _stop(process)
        if self._group:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._group, signal.SIGKILL)
        shutil.rmtree(self._dir, ignore_errors=True)


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
