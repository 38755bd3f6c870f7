"""HTTP access to the Covage API through dlt's RESTClient, its auth classes and its retrying session.

What we add to dlt, and why: bodies are parsed with orjson once (inside the retried call, so a
200 with a truncated or non-JSON body is retried like a dropped connection, which dlt's
`extract_response` cannot do), and a listing must be a JSON list (dlt would quietly wrap an
object into a one-item list). Tokens only ever travel in headers; no message here contains one.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from dlt.common.configuration.inject import with_config
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.common.typing import ConfigValue
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.requests.retry import DEFAULT_RETRY_EXCEPTIONS, DEFAULT_RETRY_STATUS
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth, AuthConfigBase, BearerTokenAuth, HttpBasicAuth
from requests import Response

from .settings import Settings

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
    """The body as JSON, parsed once and kept on the response."""
    cached = getattr(response, "_covage_json", None)
    if cached is None:
        cached = response._covage_json = orjson.loads(response.content)  # type: ignore[attr-defined]
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
    kind = "an HTML page" if head.lstrip().lower().startswith(("<!doctype", "<html")) else "not JSON"
    return f"{kind} ({len(response.content)} bytes, starting {head!r})"


class CovageRESTClient(RESTClient):
    def extract_response(self, response: Response, data_selector: Any) -> list[Any]:
        try:
            data = _parsed(response)
        except orjson.JSONDecodeError as exc:
            raise CovageAPIError(
                f"{response.request.method} {_path(response)} answered {response.status_code} with "
                f"{describe_body(response)} even after retries. Check COVAGE_API_URL points at the API."
            ) from exc
        if not isinstance(data, list):
            raise CovageAPIError(
                f"GET {_path(response)} returned a JSON {type(data).__name__}, not the list of events "
                "the reference documents. Nothing from this page was loaded."
            )
        return data


def _path(response: Response) -> str:
    """The request's path without its query string (no cursor noise, never a credential)."""
    url = response.request.url or ""
    return url.split("?", 1)[0]


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
    return CovageRESTClient(base_url=base_url.rstrip("/"), auth=auth, session=http.session, data_selector="$")


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
    )


def get_event(client: RESTClient, event_uuid: str) -> dict:
    response = client.get(f"/api/events/{event_uuid}/")
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
    return client.post(f"/api/v2/orders/{order_uuid}/events/info", json=body)


def _raise_for_status(response: Response) -> None:
    if response.status_code in (401, 403):
        raise CovageAPIError(
            f"The API refused the credentials ({response.status_code}). Set COVAGE_API_TOKEN "
            "(or sources.covage.credentials in .dlt/secrets.toml) and COVAGE_API_AUTH if the scheme is not bearer."
        )
    if not response.ok:
        raise CovageAPIError(f"{response.request.method} {_path(response)} failed with {response.status_code}.")
