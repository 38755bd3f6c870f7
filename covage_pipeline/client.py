"""HTTP access to the Covage API through dlt's RESTClient, its auth classes and its retrying session.

What we add to dlt, and why:
- bodies are parsed with orjson once (inside the retried call, so a 200 with a truncated or
  non-JSON body is retried like a dropped connection, which dlt's `extract_response` cannot do);
  a whole list with a few unreadable items is salvaged item by item (`salvage`), not retried;
- a listing must be a JSON list (dlt would quietly wrap an object into a one-item list);
- each request has a total deadline, however slowly the body arrives (requests only bounds each
  socket read, so a server dripping a byte a second would hold a run forever);
- a redirect to another origin is refused: requests strips `Authorization` there but would send
  a custom header (`COVAGE_API_AUTH=header`) to any host the API points at.
Tokens only ever travel in headers; no message here contains one.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import orjson
from dlt.common.configuration.inject import with_config
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.common.typing import ConfigValue
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.requests.retry import DEFAULT_RETRY_EXCEPTIONS, DEFAULT_RETRY_STATUS
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth, AuthConfigBase, BearerTokenAuth, HttpBasicAuth
from requests import PreparedRequest, Response, Session
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError, ConnectionError, ContentDecodingError, ReadTimeout
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

from .salvage import salvage_list, writable
from .settings import Settings

logger = logging.getLogger(__name__)

AuthType = Literal["bearer", "basic", "header"]


class CovageAPIError(RuntimeError):
    """The API answered something the pipeline cannot use; the message says what to do."""


def make_auth(
    auth_type: AuthType, token: str | None, username: str = "", header_name: str = "X-API-Key"
) -> AuthConfigBase | None:
    if not token:
        return None
    if auth_type == "bearer":
        return BearerTokenAuth(token)
    if auth_type == "basic":
        return HttpBasicAuth(username, token)
    if auth_type == "header":
        return APIKeyAuth(name=header_name, api_key=token, location="header")
    raise ValueError(f"unknown auth type {auth_type!r}: use bearer, basic or header")


def _parsed(response: Response) -> Any:
    """The body as JSON, parsed once and kept on the response; a list with unreadable items salvaged."""
    cached = getattr(response, "_covage_json", None)
    if cached is None:
        try:
            cached = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            cached = salvage_list(response.content)
            if cached is None:
                raise
        else:
            if type(cached) is list and not writable(cached):
                # an item nested deeper than can be written back (stored): read item by item
                cached = salvage_list(response.content)
        response._covage_json = cached  # type: ignore[attr-defined]
    return cached


def body_is_unreadable(response: Response | None, exception: BaseException | None) -> bool:
    """dlt retry predicate: a 2xx whose body is not JSON (truncated, an HTML page) is retried."""
    if response is None or not response.ok or (not response.content and response.status_code == 204):
        return False
    try:
        _parsed(response)
    except orjson.JSONDecodeError:
        return True
    return False


def describe_body(response: Response) -> str:
    head = response.content[:80].decode("utf-8", "replace").replace("\n", " ")
    start = head.lstrip().lower()
    if start.startswith(("<!doctype", "<html")):
        kind = "an HTML page"
    elif start.startswith("["):
        kind = "a JSON list cut short or malformed"
    else:
        kind = "not JSON"
    return f"{kind} ({len(response.content)} bytes, starting {head!r})"


def origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _refuse_other_origins(session: Session) -> None:
    """Makes `session` raise instead of following a redirect to another scheme, host or port."""
    rebuild_auth = session.rebuild_auth

    def guarded(prepared_request: PreparedRequest, response: Response) -> None:
        before, after = origin(response.request.url or ""), origin(prepared_request.url or "")
        if before != after:
            raise CovageAPIError(
                f"The API at {before} answered {response.status_code} redirecting to {after}, another origin. "
                "covage-pipeline follows redirects only within the API's own origin, so your credentials never "
                "leave it. If the API has moved, set COVAGE_API_URL to its new address."
            )
        rebuild_auth(prepared_request, response)

    session.rebuild_auth = guarded  # type: ignore[method-assign]


class DeadlineAdapter(HTTPAdapter):
    """An adapter that reads the whole body itself, and gives up once `deadline_s` have passed
    since the request was sent, raising the `ReadTimeout` the retry policy already handles."""

    def __init__(self, deadline_s: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deadline_s = deadline_s

    def send(self, request: PreparedRequest, stream: bool = False, timeout: Any = None, **kwargs: Any) -> Response:
        started = time.monotonic()
        response = super().send(request, stream=True, timeout=timeout, **kwargs)
        if stream:
            return response
        read_timeout = timeout[1] if isinstance(timeout, tuple) else timeout
        chunks: list[bytes] = []
        try:
            while True:
                left = self.deadline_s - (time.monotonic() - started)
                if left <= 0:
                    raise self._late(request)
                sock = getattr(getattr(response.raw, "connection", None), "sock", None)
                if sock is not None:  # the next read never waits past the deadline
                    sock.settimeout(min(left, read_timeout) if read_timeout else left)
                chunk = response.raw.read1(65536, decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
        except ProtocolError as exc:  # what requests' own body reading turns these into
            response.close()
            raise ChunkedEncodingError(exc, request=request) from exc
        except (ReadTimeoutError, TimeoutError) as exc:
            response.close()
            if time.monotonic() - started >= self.deadline_s:
                raise self._late(request) from None
            raise ConnectionError(exc, request=request) from exc
        except DecodeError as exc:
            response.close()
            raise ContentDecodingError(exc, request=request) from exc
        except ReadTimeout:
            response.close()
            raise
        response._content = b"".join(chunks)
        response._content_consumed = True
        response.raw.release_conn()  # read to the end: the connection goes back to the pool
        return response

    def _late(self, request: PreparedRequest) -> ReadTimeout:
        return ReadTimeout(
            f"{request.method} {_strip_query(request.url)}: no complete answer within {self.deadline_s:g} s "
            "(COVAGE_REQUEST_DEADLINE_SECONDS)",
            request=request,
        )


def _tell_retry(state) -> None:
    """Logs a retry about to happen: what went wrong (never a header or a query string), which
    attempt comes next, and when."""
    attempts = getattr(state.retry_object.stop, "max_attempt_number", None)
    if state.outcome.failed:
        exc = state.outcome.exception()
        why = str(exc) if isinstance(exc, ReadTimeout) and "no complete answer" in str(exc) else type(exc).__name__
    else:
        response = state.outcome.result()
        why = f"{response.request.method} {_strip_query(response.request.url)} answered {response.status_code}"
    wait = state.next_action.sleep if state.next_action else 0.0
    logger.warning(f"{why}; attempt {state.attempt_number + 1} of {attempts} in {wait:.1f} s")


def _strip_query(url: str | None) -> str:
    return (url or "").split("?", 1)[0]


class CovageRESTClient(RESTClient):
    def extract_response(self, response: Response, data_selector: Any) -> list[Any]:
        try:
            data = _parsed(response)
        except orjson.JSONDecodeError as exc:
            body = describe_body(response)
            advice = (
                "The connection or the API cut its answers short on every attempt: try again later."
                if body.startswith("a JSON list")
                else "Check COVAGE_API_URL points at the events API (not a login page or a proxy)."
            )
            raise CovageAPIError(
                f"{response.request.method} {_path(response)} answered {response.status_code} with {body} "
                f"even after retries. {advice}"
            ) from exc
        if not isinstance(data, list):
            raise CovageAPIError(
                f"GET {_path(response)} returned a JSON {type(data).__name__}, not the list of events "
                "the reference documents. Nothing from this page was loaded."
            )
        return data


def _path(response: Response) -> str:
    """The request's path without its query string (no cursor noise, never a credential)."""
    return _strip_query(response.request.url)


@with_config(spec=RuntimeConfiguration)
def _runtime(config: RuntimeConfiguration = ConfigValue) -> RuntimeConfiguration:
    return config


def make_client(
    base_url: str,
    auth: AuthConfigBase | None,
    request_timeout: float | None = None,
    max_attempts: int | None = None,
    backoff_factor: float | None = None,
    max_retry_delay: float | None = None,
    retry: bool = True,
    deadline_s: float = 120.0,
) -> CovageRESTClient:
    """A RESTClient whose session retries 429 (honouring Retry-After), 5xx, timeouts, dropped
    connections and unreadable bodies with capped exponential backoff.

    Settings not given here come from dlt's `[runtime]` section (`request_timeout`,
    `request_max_attempts`, `request_backoff_factor`, `request_max_retry_delay`). `retry=False`
    is for writes: a throttled or failed POST is reported, never repeated behind the user's back."""
    runtime = _runtime()
    http = Client(
        request_timeout=request_timeout if request_timeout is not None else runtime.request_timeout,
        request_max_attempts=max_attempts if max_attempts is not None else runtime.request_max_attempts,
        request_backoff_factor=backoff_factor if backoff_factor is not None else runtime.request_backoff_factor,
        request_max_retry_delay=max_retry_delay if max_retry_delay is not None else runtime.request_max_retry_delay,
        retry_condition=body_is_unreadable if retry else None,
        status_codes=DEFAULT_RETRY_STATUS if retry else (),
        exceptions=DEFAULT_RETRY_EXCEPTIONS if retry else (),
        raise_for_status=False,  # RESTClient raises for paged calls; single calls check themselves
    )
    session = http.session
    # dlt's retry policy is tenacity's: it says on screen and in the log when it retries, and why
    # (a slow API otherwise sat silent for minutes behind a spinner)
    retrying = getattr(session.send, "retry", None)
    if retrying is not None:
        retrying.before_sleep = _tell_retry
    adapter = DeadlineAdapter(deadline_s, pool_maxsize=10)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    _refuse_other_origins(session)
    return CovageRESTClient(base_url=base_url.rstrip("/"), auth=auth, session=session, data_selector="$")


def client_for(settings: Settings, retry: bool = True) -> CovageRESTClient:
    """The API client the settings describe (URL, auth scheme, token, timeouts, retries)."""
    return make_client(
        settings.api_url,
        make_auth(settings.auth_type, settings.api_token, settings.username, settings.auth_header),
        request_timeout=settings.request_timeout,
        max_attempts=settings.max_attempts,
        backoff_factor=settings.backoff_factor,
        max_retry_delay=settings.max_retry_delay,
        retry=retry,
        deadline_s=settings.request_deadline_s,
    )


def get_event(client: RESTClient, event_uuid: str) -> dict:
    # an identifier from a person is one path segment, whatever it holds (`/`, `?`, `..`)
    response = client.get(f"/api/events/{quote(event_uuid, safe='')}/")
    if response.status_code == 404:
        raise CovageAPIError(f"No event {event_uuid!r} at the API (404).")
    _raise_for_status(response)
    data = _parsed(response)
    if not isinstance(data, dict):
        raise CovageAPIError(f"GET /api/events/{event_uuid}/ returned a JSON {type(data).__name__}, not an event.")
    return data


def post_info(client: RESTClient, order_uuid: str, message: str, stop_deferred: bool | None = None) -> Response:
    body: dict[str, Any] = {"message": message}
    if stop_deferred is not None:
        body["stop_deferred"] = stop_deferred
    return client.post(f"/api/v2/orders/{quote(order_uuid, safe='')}/events/info", json=body)


def _raise_for_status(response: Response) -> None:
    if response.status_code in (401, 403):
        raise CovageAPIError(
            f"The API refused the credentials ({response.status_code}). Set COVAGE_API_TOKEN "
            "(or api_token under [sources.covage] in .dlt/secrets.toml) and COVAGE_API_AUTH if the scheme "
            "is not bearer."
        )
    if not response.ok:
        raise CovageAPIError(f"{response.request.method} {_path(response)} failed with {response.status_code}.")
