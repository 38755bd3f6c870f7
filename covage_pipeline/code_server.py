"""Recycling what `covage dagster` runs: Dagster's own reload of the code location (the UI's
"Reload") and a fresh daemon, on a timer, at a moment when no run is queued or in flight.

Why: the process that loads the definitions grows with every run it launches and every minute
the daemon re-reads the workspace (about 30 MB an hour at a one-minute cron, measured; its
Python objects barely grow, the heap fragments around them), and Dagster's code server has no
setting like gunicorn's `max_requests` or Celery's `max_tasks_per_child`. A reload starts a fresh
process; the old one stops taking runs and exits once its own runs are done. The daemon grows
too, more slowly (a few MB an hour), for as long as it runs: it is restarted at the same moment.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx

# the code location, named after its module as `dagster dev -m dagster_defs` named it: the state of
# the schedules and the runs' history refer to it
LOCATION = "dagster_defs"
# a queued run may be launched at any moment: reloading then would race its start (the statuses of
# dagster_defs.operations.ACTIVE, as GraphQL names: the package does not import the definitions)
BUSY = "[QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]"
RUNS = f"{{ runsOrError(filter: {{statuses: {BUSY}}}, limit: 1) {{ ... on Runs {{ results {{ runId }} }} }} }}"
RELOAD = """
mutation($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) {
    __typename
    ... on WorkspaceLocationEntry {
      locationOrLoadError { __typename ... on PythonError { message causes { message } } }
    }
    ... on PythonError { message causes { message } }
  }
}
"""


def webserver_url(host: str, port: int) -> str:
    """Where this machine reaches a webserver told to listen on `host`: a wildcard address on
    loopback, an IPv6 address in brackets."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def graphql(url: str, query: str, **variables: object) -> dict:
    """A GraphQL request to Dagster's webserver: its data, or its first error raised."""
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=300)
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise RuntimeError(body["errors"][0].get("message", body["errors"]))
    return body["data"]


def runs_in_flight(url: str) -> bool:
    """Whether a run is queued, starting, running or being cancelled."""
    return bool(graphql(url, RUNS)["runsOrError"].get("results"))


def reload_code_location(url: str, name: str = LOCATION) -> None:
    """Asks the webserver to reload the code location (a new code server process); raises if the
    new one could not load the definitions."""
    entry = graphql(url, RELOAD, name=name)["reloadRepositoryLocation"]
    error = entry if "message" in entry else entry.get("locationOrLoadError") or {}
    if entry["__typename"] != "WorkspaceLocationEntry" or error.get("message"):
        raise RuntimeError(f"reloading {name} failed: {_in_brief(error) or entry['__typename']}")


def _in_brief(error: dict) -> str:
    """Dagster's error and its innermost cause (a dbt project that no longer parses, say), the
    first paragraph of each on one line: the whole traceback is in the UI."""
    paragraphs = [
        " ".join((e.get("message") or "").split("\n\n")[0].split())[:500]
        for e in (error, *error.get("causes", [])[-1:])
    ]
    return "; caused by ".join(p for p in paragraphs if p)


def recycle_code_server(
    url: str,
    every_s: float,
    stop: threading.Event,
    log: Callable[[str], None] = print,
    daemon_stopped: Callable[[], AbstractContextManager] = contextlib.nullcontext,
) -> None:
    """Reloads the code location every `every_s` seconds, waiting for a moment without runs, with
    the daemon stopped meanwhile (`daemon_stopped`: no queued run can start during the reload, and
    a fresh daemon comes after); returns when `stop` is set. The webserver unreachable or busy:
    tried again at the next poll. The definitions no longer loading (a broken edit): the location
    shows the error, as after the UI's Reload, and the next attempt waits a whole period (each one
    starts a process)."""
    poll_s = min(30.0, every_s / 2)
    last = time.monotonic()
    while not stop.wait(poll_s):
        if time.monotonic() - last < every_s:
            continue
        try:
            if runs_in_flight(url):
                continue
            with daemon_stopped():
                if runs_in_flight(url):  # the daemon started a queued one just before it stopped
                    continue
                reload_code_location(url)
        except httpx.ConnectError:  # the webserver not up yet, or stopping
            continue
        except httpx.HTTPError as error:
            log(f"Code server not recycled ({error}); retrying in {poll_s:.0f} s.")
            continue
        except RuntimeError as error:
            last = time.monotonic()
            log(f"Code server not recycled: {error}. Fix the definitions and reload them in the UI.")
            continue
        last = time.monotonic()
        log(f"Code server recycled, daemon restarted (every {every_s / 60:g} min, COVAGE_CODE_SERVER_RECYCLE_MINUTES).")
