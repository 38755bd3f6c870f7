"""Support alerts: one per new rejection, saturation, missed appointment, failed intervention and
order newly stuck, raised after each publication of the marts, recorded once, then delivered.

Recorded in their own DuckDB file (`<data dir>/alerts/alerts.duckdb`, never the warehouse: a
sensor must not wait on the pipeline's writer lock), keyed so that a rerun never repeats one. The
first evaluation records the history as a baseline without delivering it: alerts are for what is
new. Delivery: the Dagster log always; a webhook (JSON POST) when COVAGE_ALERT_WEBHOOK_URL is set,
retried a few times with a short timeout, failures recorded and retried on later ticks. It never
raises into the pipeline.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import httpx

from covage_pipeline.publish import analysts_path
from covage_pipeline.settings import Settings
from covage_pipeline.warehouse import query, read_only_rows

EVENT_ALERTS = {
    "order-rejected": "rejection",
    "order-localloop-saturation": "saturation",
    "order-network-saturation": "saturation",
    "order-appointment-missed": "missed_appointment",
    "order-on-site-intervention-failed": "failed_intervention",
}
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
)
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


def _marts_rows(settings: Settings, sql_on_marts: str) -> list[dict]:
    """Reads the analysts' copy on DuckDB (never the warehouse: no lock), the marts on PostgreSQL."""
    if settings.destination == "duckdb":
        return read_only_rows(analysts_path(settings), sql_on_marts.replace("{marts}", "marts"))
    return query(settings, sql_on_marts.replace("{marts}", settings.marts_schema))


def current_alerts(settings: Settings) -> list[Alert]:
    """Every situation that deserves an alert, in the marts as they are now."""
    types = ", ".join(f"'{t}'" for t in EVENT_ALERTS)
    events = _marts_rows(
        settings,
        "select object_uuid, kosc_order_ref, event_uuid, event_type, business_time, summary "
        f"from {{marts}}.object_history where object_type = 'order' and event_type in ({types})",
    )
    alerts = [
        Alert(
            alert_id=f"{EVENT_ALERTS[e['event_type']]}:{e['event_uuid']}",
            kind=EVENT_ALERTS[e["event_type"]],
            order_uuid=e["object_uuid"],
            kosc_order_ref=e["kosc_order_ref"],
            event_uuid=e["event_uuid"],
            occurred_at=e["business_time"],
            message=f"{e['event_type']} on order {e['kosc_order_ref'] or e['object_uuid']}"
            + (f": {e['summary']}" if e["summary"] else ""),
        )
        for e in events
    ]
    stuck = _marts_rows(
        settings,
        "select order_uuid, kosc_order_ref, current_stage, last_event_at, days_since_last_event "
        "from {marts}.backlog where is_stuck",
    )
    alerts += [
        Alert(
            # once per stuck spell: a new event and a new silence make a new alert
            alert_id=f"stuck:{s['order_uuid']}:{s['last_event_at']}",
            kind="stuck_order",
            order_uuid=s["order_uuid"],
            kosc_order_ref=s["kosc_order_ref"],
            event_uuid=None,
            occurred_at=s["last_event_at"],
            message=(
                f"order {s['kosc_order_ref'] or s['order_uuid']} stuck at {s['current_stage']}: "
                f"no event for {float(s['days_since_last_event']):.1f} days"
            ),
        )
        for s in stuck
    ]
    return alerts


def _fields(a: Alert) -> tuple:
    return (a.alert_id, a.kind, a.order_uuid, a.kosc_order_ref, a.event_uuid, a.occurred_at, a.message)


def record_new(settings: Settings, alerts: list[Alert]) -> list[Alert]:
    """Records the alerts not seen before; returns those to deliver (none on the first run)."""
    path = alerts_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute(SCHEMA)
        first_run = con.execute("select count(*) from alerts").fetchone()[0] == 0
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


def deliver(settings: Settings, alerts: list[Alert], webhook_url: str | None, log) -> dict[str, int]:
    """Logs each alert, posts it to the webhook if one is set; records the outcome of each."""
    outcome: dict[str, tuple[str, str | None]] = {}
    with httpx.Client(timeout=5.0) as client:
        for alert in alerts:
            log.warning(f"[covage alert] {alert.kind}: {alert.message}")
            if not webhook_url:
                outcome[alert.alert_id] = ("logged", None)
                continue
            error = None
            for attempt in range(3):
                try:
                    client.post(webhook_url, json=alert.payload()).raise_for_status()
                    error = None
                    break
                except httpx.HTTPStatusError as exc:  # the URL may hold a secret: never recorded
                    error = f"HTTP {exc.response.status_code}"
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                    time.sleep(0.2 * 2**attempt)
            outcome[alert.alert_id] = ("failed", error) if error else ("delivered", None)
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
