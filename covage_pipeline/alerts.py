"""Support alerts: one per new rejection, saturation, missed appointment, failed intervention and
order newly stuck (the mart `alert_candidates` says which), recorded once, then delivered.

Recorded in their own DuckDB file (`<data dir>/alerts/alerts.duckdb`, never the warehouse: a
sensor must not wait on the pipeline's writer lock), keyed so that a rerun never repeats one. The
first evaluation records the history as a baseline without delivering it: alerts are for what is
new (the first evaluation is recorded as such, even when it finds nothing). Delivery: a log
always; a webhook (JSON POST) when COVAGE_ALERT_WEBHOOK_URL is set, through dlt's retrying HTTP
client, failures recorded and retried on later evaluations. It never raises into the pipeline.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from .settings import Settings, untraced
from .warehouse import marts_rows

MAX_ATTEMPTS = 5

SCHEMA = """
create table if not exists alerts (
    alert_id varchar primary key,      -- kind:key, the reason an alert is never raised twice
    kind varchar not null,
    order_uuid varchar,
    kosc_order_ref varchar,
    event_uuid varchar,
    occurred_at timestamp,
    message varchar,
    raised_at timestamp not null,
    status varchar not null,           -- baseline | pending | delivered | failed | logged
    attempts integer not null default 0,
    last_error varchar
);
-- the first evaluation, once it happened: its alerts were the baseline. Not guessed from an
-- empty table: a first evaluation finding nothing would make the first real alerts a baseline
create table if not exists evaluations (first_at timestamp not null);
"""


@dataclass(frozen=True)
class Alert:
    alert_id: str
    kind: str
    order_uuid: str | None
    kosc_order_ref: str | None
    event_uuid: str | None
    occurred_at: datetime | None
    message: str

    def payload(self) -> dict:
        return {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "order_uuid": self.order_uuid,
            "kosc_order_ref": self.kosc_order_ref,
            "event_uuid": self.event_uuid,
            "occurred_at": self.occurred_at.isoformat() if self.occurred_at else None,
            "message": self.message,
        }


def alerts_path(settings: Settings) -> Path:
    return settings.data_dir / "alerts" / "alerts.duckdb"


def current_alerts(settings: Settings) -> list[Alert]:
    """Every situation that deserves an alert, in the marts as they are now."""
    columns = ", ".join(f.name for f in fields(Alert))
    rows = marts_rows(settings, f"select {columns} from {{marts}}.alert_candidates order by occurred_at, alert_id")
    return [Alert(**row) for row in rows]


def _fields(a: Alert) -> tuple:
    return tuple(getattr(a, f.name) for f in fields(Alert))


def record_new(settings: Settings, alerts: list[Alert]) -> list[Alert]:
    """Records the alerts not seen before; returns those to deliver (none on the first run)."""
    path = alerts_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute(SCHEMA)
        con.execute("begin")
        # (a store from before the marker: its alerts say it was evaluated)
        first_run = not con.execute("select 1 from evaluations union all select 1 from alerts limit 1").fetchall()
        known = {row[0] for row in con.execute("select alert_id from alerts").fetchall()}
        new = [a for a in alerts if a.alert_id not in known]
        now = datetime.now(UTC).replace(tzinfo=None)
        status = "baseline" if first_run else "pending"
        if new:
            con.executemany(
                "insert into alerts (alert_id, kind, order_uuid, kosc_order_ref, event_uuid, occurred_at, message, "
                "raised_at, status) values (?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing",
                [(*_fields(a), now, status) for a in new],
            )
        if first_run:
            con.execute("insert into evaluations values (?)", [now])
        con.execute("commit")
    finally:
        con.close()
    return [] if first_run else new


def pending(settings: Settings) -> list[Alert]:
    """Alerts recorded but not delivered yet (new, or failed fewer than MAX_ATTEMPTS times)."""
    con = duckdb.connect(str(alerts_path(settings)))
    try:
        rows = con.execute(
            "select alert_id, kind, order_uuid, kosc_order_ref, event_uuid, occurred_at, message from alerts "
            "where status in ('pending', 'failed') and attempts < ? order by raised_at, alert_id",
            [MAX_ATTEMPTS],
        ).fetchall()
    finally:
        con.close()
    return [Alert(*row) for row in rows]


def deliver(settings: Settings, alerts: list[Alert], log) -> dict[str, int]:
    """Logs each alert, posts it to the webhook if one is set; records the outcome of each."""
    from dlt.sources.helpers.requests import Client
    from requests.exceptions import HTTPError, RequestException

    url = settings.alert_webhook_url
    # dlt's retrying client: 429 and 5xx, timeouts and dropped connections retried with backoff
    with untraced():  # made on every sensor tick
        session = Client(request_timeout=5.0, request_max_attempts=3, request_backoff_factor=0.2).session
    outcome: dict[str, tuple[str, str | None]] = {}
    for alert in alerts:
        log.warning(f"[covage alert] {alert.kind}: {alert.message}")
        if not url:
            outcome[alert.alert_id] = ("logged", None)
            continue
        try:
            session.post(url, json=alert.payload()).raise_for_status()
            outcome[alert.alert_id] = ("delivered", None)
        except HTTPError as exc:  # the URL may hold a secret: never recorded
            outcome[alert.alert_id] = ("failed", f"HTTP {exc.response.status_code}")
        except RequestException as exc:
            outcome[alert.alert_id] = ("failed", type(exc).__name__)
    if not outcome:
        return {}
    con = duckdb.connect(str(alerts_path(settings)))
    try:
        con.executemany(
            "update alerts set status = ?, last_error = ?, attempts = attempts + 1 where alert_id = ?",
            [(status, error, alert_id) for alert_id, (status, error) in outcome.items()],
        )
    finally:
        con.close()
    return dict(Counter(status for status, _ in outcome.values()))
