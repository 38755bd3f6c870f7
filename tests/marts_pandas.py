"""The marts computed a second, independent way: in pandas, from the API's own events (the
emulator's ground truth), following the rules written in the models' yml. Not the same SQL run
twice: a mistake in a model's logic shows up as a difference."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd

from covage_pipeline.emulator import catalogue

from .oracle import is_normal, read_time

STATUS = {
    "order-submitted": "submitted",
    "order-acknowledged": "acknowledged",
    "order-running": "running",
    "order-requalified": "requalified",
    "order-rejected": "rejected",
    "order-completed": "completed",
    "order-cancelled": "cancelled",
    "order-dropped": "dropped",
}
FINAL = {"completed", "rejected", "cancelled", "dropped"}
MESSAGE_ONLY = {"order-info", "order-information-from-provider", "order-cri"}
STAGES = {
    "submitted_to_acknowledged": ("submitted_at", "acknowledged_at"),
    "acknowledged_to_running": ("acknowledged_at", "running_at"),
    "running_to_completed": ("running_at", "completed_at"),
    "lead_time": ("submitted_at", "completed_at"),
    "submitted_to_rejected": ("submitted_at", "rejected_at"),
    "appointment_to_intervention_result": ("appointment_agreed_at", "intervention_result_at"),
    "saturation_to_desaturation_planned": ("saturated_at", "desaturation_planned_at"),
    "saturation_to_completed": ("saturated_at", "completed_at"),
}
HOUR = pd.Timedelta(hours=1)
# The lifecycle in its own order, as the reference tells it, for events at the same instant (a
# provider's batch); types on one line rank together; types not here (unknown) come last.
LIFECYCLE = [
    ["order-submitted"],
    ["order-acknowledged"],
    ["order-running"],
    ["order-sensibleaccess"],
    ["order-sensibleaccess-orderconfirmed"],
    ["order-delayed"],
    ["order-delayed-orderconfirmed"],
    ["order-localloop-saturation", "order-network-saturation"],
    ["order-localloop-desaturation-quote-emitted"],
    ["order-localloop-desaturation-quote-accepted"],
    ["order-localloop-desaturation-planned", "order-network-desaturation-planned"],
    ["order-appointment-agreed"],
    ["order-appointment-confirmed"],
    ["order-appointment-declined"],
    ["order-appointment-deferred"],
    ["order-appointment-missed"],
    ["order-on-site-intervention-succeeded", "order-on-site-intervention-failed"],
    ["order-cri"],
    ["order-info", "order-information-from-provider"],
    ["order-rejected"],
    ["order-requalified"],
    ["order-completed", "order-cancelled", "order-dropped"],
    ["service-activated"],
    ["service-modified", "service-updated"],
    ["service-info"],
    ["service-slammed", "service-terminated"],
]
RANK = {type_: rank for rank, types in enumerate(LIFECYCLE) for type_ in types}


def events_frame(truth: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(truth)
    df["created"] = pd.to_datetime(df["creation_date"].map(read_time))
    df["event"] = pd.to_datetime(df["event_date"].map(read_time))
    df["fallback"] = df["event"].isna()
    df["business"] = df["event"].fillna(df["created"])
    df["raw_kept"] = df["event_date"].map(lambda v: isinstance(v, str) and not is_normal(v))
    df["unknown"] = ~df["type"].isin(catalogue.DOCUMENTED_EVENTS)
    data = df["data"].map(lambda d: d if isinstance(d, dict) else {})
    for field in ("kosc_order_ref", "service_uuid", "service_alias", "start_date", "end_date"):
        df[field] = data.map(lambda d, f=field: d.get(f))
    for field in ("reject_code", "reject_subcode", "reject_reason", "reject_description", "message"):
        df[field] = data.map(lambda d, f=field: d.get(f))
    df["slot_invalid"] = [
        any(isinstance(v, str) and read_time(v) is None for v in (s, e))
        for s, e in zip(df["start_date"], df["end_date"], strict=True)
    ]
    df["ahead"] = df["event"] > df["created"]
    df["rank"] = df["type"].map(RANK)
    return df.sort_values(["business", "rank", "created", "event_uuid"], na_position="last").reset_index(drop=True)


def _first(g: pd.DataFrame, *types: str):
    hit = g.loc[g["type"].isin(types), "business"]
    return hit.min() if len(hit) else None


def _firsts(events: pd.DataFrame):
    """`_first` for every object at once: a lookup per type instead of a filter of the group (the
    filter costs about a millisecond, a dozen times an order)."""
    table = events.groupby(["object_uuid", "type"])["business"].min().to_dict()

    def first(object_uuid: str, *types: str):
        found = [table[(object_uuid, t)] for t in types if (object_uuid, t) in table]
        known = [v for v in found if pd.notna(v)]
        return min(known) if known else found[0] if found else None

    return first


def orders(ev: pd.DataFrame) -> pd.DataFrame:
    rows = []
    kinds = order_kinds(ev)
    order_events = ev[ev["object_type"] == "order"]
    first = _firsts(order_events)
    for order_uuid, g in order_events.groupby("object_uuid", sort=False):
        count = g["type"].value_counts()
        kind, kind_at = kinds.get(order_uuid, (None, None))
        statuses = g[g["type"].isin(list(STATUS))]
        current = STATUS[statuses["type"].iloc[-1]] if len(statuses) else None
        since = statuses["business"].iloc[-1] if len(statuses) else None
        submitted = first(order_uuid, "order-submitted")
        completed = first(order_uuid, "order-completed")
        rejected = first(order_uuid, "order-rejected")
        refs = [r for r in g["kosc_order_ref"] if isinstance(r, str)]
        pairs = zip(g["type"], g["service_uuid"], strict=True)
        services = [s for t, s in pairs if t == "order-completed" and isinstance(s, str)]
        final = current in FINAL
        rows.append(
            {
                "order_uuid": order_uuid,
                "kosc_order_ref": max(refs) if refs else None,
                "kind": kind,
                "kind_known_at": kind_at,
                "submitted_at": submitted,
                "acknowledged_at": first(order_uuid, "order-acknowledged"),
                "running_at": first(order_uuid, "order-running"),
                "appointment_agreed_at": first(order_uuid, "order-appointment-agreed"),
                "appointment_confirmed_at": first(order_uuid, "order-appointment-confirmed"),
                "completed_at": completed,
                "rejected_at": rejected,
                "cancelled_at": first(order_uuid, "order-cancelled"),
                "dropped_at": first(order_uuid, "order-dropped"),
                "saturated_at": first(order_uuid, "order-localloop-saturation", "order-network-saturation"),
                "desaturation_planned_at": first(
                    order_uuid, "order-localloop-desaturation-planned", "order-network-desaturation-planned"
                ),
                "intervention_result_at": first(
                    order_uuid, "order-on-site-intervention-succeeded", "order-on-site-intervention-failed"
                ),
                "first_event_at": g["business"].min(),
                "last_event_at": g["business"].max(),
                "case_duration_hours": (g["business"].max() - g["business"].min()) / HOUR,
                "current_status": current,
                "status_since": since,
                "is_final": final,
                "outcome": current if final else "open",
                "was_requalified": completed is not None and rejected is not None and completed >= rejected,
                "service_uuid": max(services) if services else None,
                **{
                    column: int(count.get(type_, 0))
                    for column, type_ in (
                        ("appointments_agreed", "order-appointment-agreed"),
                        ("appointments_confirmed", "order-appointment-confirmed"),
                        ("appointments_declined", "order-appointment-declined"),
                        ("appointments_missed", "order-appointment-missed"),
                        ("appointments_deferred", "order-appointment-deferred"),
                        ("localloop_saturations", "order-localloop-saturation"),
                        ("network_saturations", "order-network-saturation"),
                        ("interventions_succeeded", "order-on-site-intervention-succeeded"),
                        ("interventions_failed", "order-on-site-intervention-failed"),
                        ("info_messages", "order-info"),
                        ("provider_messages", "order-information-from-provider"),
                        ("intervention_reports", "order-cri"),
                        ("requalifications", "order-requalified"),
                        ("submissions", "order-submitted"),
                    )
                },
                "events": len(g),
                "is_missing_submission": submitted is None,
                "has_events_before_submission": submitted is not None and bool((g["business"] < submitted).any()),
                "has_events_after_final": final and bool((g["business"] > since).any()),
                "has_unknown_events": bool(g["unknown"].any()),
                "has_unreadable_event_date": bool(g["fallback"].any()),
                "has_event_date_after_creation": bool(g["ahead"].any()),
                "has_unreadable_appointment_date": bool(g["slot_invalid"].any()),
            }
        )
    out = pd.DataFrame(rows)
    for column in out.columns:
        if column.endswith("_at") or column == "status_since":
            out[column] = pd.to_datetime(out[column])
    out["submission_month"] = out["submitted_at"].dt.to_period("M").dt.to_timestamp().dt.date
    return out


def durations(orders_df: pd.DataFrame) -> pd.DataFrame:
    out = orders_df[["order_uuid", "kosc_order_ref", "outcome"]].copy()
    out["submission_month"] = orders_df["submission_month"]
    out["is_saturated"] = orders_df["saturated_at"].notna()
    out["is_localloop_saturated"] = orders_df["localloop_saturations"] > 0
    out["is_network_saturated"] = orders_df["network_saturations"] > 0
    for stage, (start, end) in STAGES.items():
        out[f"{stage}_hours"] = (orders_df[end] - orders_df[start]) / HOUR
    out["lead_time_days"] = out["lead_time_hours"] / 24
    return out


def _by_period(df: pd.DataFrame, compute) -> list[dict]:
    """compute(group) -> dict, for each month of submission and overall."""
    df = df[df["submission_month"].notna()]
    rows = [{"period": "month", "submission_month": m, **compute(g)} for m, g in df.groupby("submission_month")]
    rows.append({"period": "overall", "submission_month": None, **compute(df)})
    return rows


def _q(values: pd.Series, q: float):
    values = values.dropna()
    return float(values.quantile(q)) if len(values) else None


def lifecycle_stats(dur: pd.DataFrame) -> list[dict]:
    rows = []
    for stage in STAGES:
        column = f"{stage}_hours"
        part = dur[(dur[column] >= 0) & dur["submission_month"].notna()]  # negative: a data-quality issue
        for row in _by_period(part, lambda g, c=column: {
            "orders": len(g), "mean_hours": float(g[c].mean()) if len(g) else None, "median_hours": _q(g[c], 0.5),
            "p90_hours": _q(g[c], 0.9), "p95_hours": _q(g[c], 0.95),
        }):  # fmt: skip
            if row["orders"]:
                rows.append({**row, "stage": stage})
    return rows


def delivery_stats(dur: pd.DataFrame) -> list[dict]:
    def compute(g):
        out = {
            "orders_submitted": len(g),
            "orders_completed": int(g["lead_time_days"].notna().sum()),
            "median_lead_time_days": _q(g["lead_time_days"], 0.5),
            "p90_lead_time_days": _q(g["lead_time_days"], 0.9),
        }
        for days in (7, 14, 30):
            within = int((g["lead_time_days"] <= days).sum())
            out[f"completed_within_{days}_days"] = within
            out[f"share_completed_within_{days}_days"] = within / len(g)
        return out

    return _by_period(dur, compute)


def _with_month(orders_df: pd.DataFrame) -> pd.DataFrame:
    return orders_df[orders_df["submitted_at"].notna()].copy()


def rejection_stats(orders_df: pd.DataFrame) -> list[dict]:
    df = _with_month(orders_df)
    df["hours_to_rejection"] = (df["rejected_at"] - df["submitted_at"]) / HOUR

    def compute(g):
        rejected = int((g["outcome"] == "rejected").sum())
        finished = int(g["is_final"].sum())
        return {
            "orders_submitted": len(g),
            "orders_finished": finished,
            "orders_rejected": rejected,
            "orders_ever_rejected": int(g["rejected_at"].notna().sum()),
            "orders_requalified": int(g["was_requalified"].sum()),
            "rejection_rate": rejected / len(g),
            "rejection_rate_of_finished": rejected / finished if finished else None,
            "median_hours_to_rejection": _q(g["hours_to_rejection"], 0.5),
            "p90_hours_to_rejection": _q(g["hours_to_rejection"], 0.9),
        }

    return _by_period(df, compute)


def rejection_reasons(ev: pd.DataFrame, orders_df: pd.DataFrame) -> list[dict]:
    rej = ev[ev["type"] == "order-rejected"].merge(
        orders_df[["order_uuid", "submitted_at"]], left_on="object_uuid", right_on="order_uuid", how="left"
    )
    rej["hours"] = (rej["business"] - rej["submitted_at"]) / HOUR
    keys = ["reject_code", "reject_subcode", "reject_reason"]
    total = len(rej)
    groups = []
    for key, g in rej.groupby(keys, dropna=False):
        key = tuple(None if isinstance(k, float) else k for k in key)
        groups.append((key, len(g), _q(g["hours"], 0.5)))
    # rank: count desc, then code, subcode, reason ascending with nulls last
    groups.sort(key=lambda x: (-x[1], *[(k is None, k or "") for k in x[0]]))
    by_code: dict = {}
    for key, n, _ in groups:
        by_code[key[0]] = by_code.get(key[0], 0) + n
    code_order = sorted(by_code, key=lambda c: (-by_code[c], c is None, c or ""))
    rows, cumulative = [], 0
    for rank, (key, n, median) in enumerate(groups, start=1):
        cumulative += n
        rows.append(
            {
                "pareto_rank": rank,
                **dict(zip(keys, key, strict=True)),
                "rejections": n,
                "share_of_rejections": n / total,
                "cumulative_share": cumulative / total,
                "median_hours_to_rejection": median,
                "code_rejections": by_code[key[0]],
                "code_share": by_code[key[0]] / total,
                "code_rank": code_order.index(key[0]) + 1,
            }
        )
    return rows


def saturation_stats(dur: pd.DataFrame) -> list[dict]:
    def compute(g):
        n = len(g)
        sat = g[g["is_saturated"]]
        unsat = g[~g["is_saturated"]]
        planned = int(g["saturation_to_desaturation_planned_hours"].notna().sum())
        med_sat, med_unsat = _q(sat["lead_time_hours"], 0.5), _q(unsat["lead_time_hours"], 0.5)
        cost = med_sat - med_unsat if med_sat is not None and med_unsat is not None else None
        return {
            "orders_submitted": n,
            "orders_localloop_saturated": int(g["is_localloop_saturated"].sum()),
            "orders_network_saturated": int(g["is_network_saturated"].sum()),
            "orders_saturated": len(sat),
            "share_localloop_saturated": g["is_localloop_saturated"].sum() / n,
            "share_network_saturated": g["is_network_saturated"].sum() / n,
            "share_saturated": len(sat) / n,
            "orders_desaturation_planned": planned,
            "share_desaturation_planned": planned / len(sat) if len(sat) else None,
            "median_hours_to_desaturation_planned": _q(g["saturation_to_desaturation_planned_hours"], 0.5),
            "saturated_completed": int(sat["lead_time_hours"].notna().sum()),
            "unsaturated_completed": int(unsat["lead_time_hours"].notna().sum()),
            "median_lead_time_saturated_hours": med_sat,
            "median_lead_time_unsaturated_hours": med_unsat,
            "saturation_cost_hours": cost,
            "saturation_cost_days": cost / 24 if cost is not None else None,
        }

    return _by_period(dur, compute)


def appointment_stats(orders_df: pd.DataFrame) -> list[dict]:
    df = _with_month(orders_df)

    def compute(g):
        agreed = int(g["appointments_agreed"].sum())
        ok, ko = int(g["interventions_succeeded"].sum()), int(g["interventions_failed"].sum())
        done = g[g["outcome"] == "completed"]
        out = {
            "appointments_agreed": agreed,
            "interventions_succeeded": ok,
            "interventions_failed": ko,
            "intervention_success_rate": ok / (ok + ko) if ok + ko else None,
            "orders_completed": len(done),
            "appointments_per_completed_order": done["appointments_agreed"].sum() / len(done) if len(done) else None,
        }
        for kind in ("confirmed", "missed", "declined", "deferred"):
            n = int(g[f"appointments_{kind}"].sum())
            out[f"appointments_{kind}"] = n
            if kind != "confirmed":
                out[f"{kind}_rate"] = n / agreed if agreed else None
        return out

    return _by_period(df, compute)


def services(ev: pd.DataFrame) -> pd.DataFrame:
    done = ev[(ev["type"] == "order-completed") & ev["service_uuid"].notna()]
    rows = {}
    for svc, g in done.groupby("service_uuid", sort=False):  # ev is sorted: the first row is the first completion
        rows[svc] = {
            "service_uuid": svc,
            "service_alias": g["service_alias"].iloc[0],
            "created_by_order_uuid": g["object_uuid"].iloc[0],
            "created_at": g["business"].iloc[0],
            "ended_by_order_uuid": g["object_uuid"].iloc[-1] if len(g) > 1 else None,
        }
    for svc, g in ev[ev["object_type"] == "service"].groupby("object_uuid", sort=False):
        row = rows.setdefault(
            svc,
            {
                "service_uuid": svc,
                "service_alias": None,
                "created_by_order_uuid": None,
                "created_at": None,
                "ended_by_order_uuid": None,
            },
        )
        modified = g[g["type"].isin(["service-modified", "service-updated"])]
        row.update(
            activated_at=_first(g, "service-activated"),
            terminated_at=_first(g, "service-terminated"),
            slammed_at=_first(g, "service-slammed"),
            last_modified_at=modified["business"].max() if len(modified) else None,
            modifications=len(modified),
            info_messages=int((g["type"] == "service-info").sum()),
            has_unknown_events=bool(g["unknown"].any()),
            events=len(g),
        )
    out = []
    for row in rows.values():
        t, s, a = row.get("terminated_at"), row.get("slammed_at"), row.get("activated_at")
        ended = min(x for x in (t, s) if x is not None) if (t is not None or s is not None) else None
        status = (
            "slammed"
            if s is not None and (t is None or s < t)
            else "terminated"
            if t is not None
            else "active"
            if a is not None
            else "pending"
        )
        base = {"activated_at": None, "terminated_at": None, "slammed_at": None, "last_modified_at": None}
        base.update({"modifications": 0, "info_messages": 0, "has_unknown_events": False, "events": 0})
        out.append({**base, **row, "ended_at": ended, "status": status})
    return pd.DataFrame(out)


def service_base_monthly(services_df: pd.DataFrame, ev: pd.DataFrame) -> list[dict]:
    live = services_df[services_df["activated_at"].notna()]
    first = pd.Timestamp(live["activated_at"].min()).to_period("M").to_timestamp()
    last = pd.Timestamp(ev["business"].max()).to_period("M").to_timestamp()
    rows = []
    for start in pd.date_range(first, last, freq="MS"):
        end = start + pd.DateOffset(months=1)
        act, ended = live["activated_at"], live["ended_at"]

        def active(at, act=act, ended=ended):
            return int(((act < at) & (ended.isna() | (ended >= at))).sum())

        in_month = (ended >= start) & (ended < end)
        at_start = active(start)
        terminations = int((in_month & (live["status"] == "terminated")).sum())
        slams = int((in_month & (live["status"] == "slammed")).sum())
        rows.append(
            {
                "month_start": start.date(),
                "active_at_month_start": at_start,
                "activations": int(((act >= start) & (act < end)).sum()),
                "terminations": terminations,
                "slams": slams,
                "active_at_month_end": active(end),
                "churn_rate": (terminations + slams) / at_start if at_start else None,
            }
        )
    return rows


def _lifecycle_steps(ev: pd.DataFrame) -> pd.DataFrame:
    keep = (ev["object_type"] == "order") & ~ev["unknown"] & ~ev["type"].isin(MESSAGE_ONLY)
    return ev[keep]


def backlog(ev: pd.DataFrame, orders_df: pd.DataFrame, stuck_after_days: float = 14) -> pd.DataFrame:
    as_of = ev["created"].max()
    last_step = _lifecycle_steps(ev).groupby("object_uuid").tail(1).set_index("object_uuid")
    df = orders_df[orders_df["outcome"] == "open"].copy()
    df["current_stage"] = df["order_uuid"].map(last_step["type"]).str.replace("order-", "", regex=False)
    df["stage_since"] = df["order_uuid"].map(last_step["business"])
    df["as_of"] = as_of
    df["age_days"] = (as_of - df["submitted_at"]) / pd.Timedelta(days=1)
    df["days_since_last_event"] = (as_of - df["last_event_at"]) / pd.Timedelta(days=1)
    df["is_stuck"] = df["days_since_last_event"] > stuck_after_days
    columns = ["order_uuid", "kosc_order_ref", "current_status", "current_stage", "stage_since", "submitted_at"]
    return df[[*columns, "last_event_at", "as_of", "age_days", "days_since_last_event", "is_stuck"]]


def order_variants(ev: pd.DataFrame, orders_df: pd.DataFrame) -> pd.DataFrame:
    steps = _lifecycle_steps(ev).copy()
    steps["step"] = steps["type"].str.replace("order-", "", regex=False)
    rows = []
    for order_uuid, g in steps.groupby("object_uuid", sort=False):
        counts = g["step"].value_counts()
        repeated = sorted(f"{s} x{n}" for s, n in counts.items() if n > 1)
        rows.append(
            {
                "order_uuid": order_uuid,
                "variant": " > ".join(g["step"]),
                "steps": len(g),
                "repeated_steps": ", ".join(repeated) if repeated else None,
                "has_rework": bool(repeated),
            }
        )
    df = pd.DataFrame(rows).merge(orders_df, on="order_uuid")
    df["lead_time_hours"] = (df["completed_at"] - df["submitted_at"]) / HOUR
    df["was_resubmitted"] = df["submissions"] > 1
    df["had_several_appointments"] = df["appointments_agreed"] > 1
    columns = ["order_uuid", "variant", "steps", "outcome", "lead_time_hours", "repeated_steps", "has_rework"]
    return df[[*columns, "was_resubmitted", "had_several_appointments"]]


def process_variants(variants_df: pd.DataFrame) -> list[dict]:
    total = len(variants_df)
    rows = []
    for variant, g in variants_df.groupby("variant"):
        median = _q(g["lead_time_hours"], 0.5)
        rows.append(
            {
                "variant": variant,
                "steps": int(g["steps"].max()),
                "orders": len(g),
                "share_of_orders": len(g) / total,
                "orders_completed": int((g["outcome"] == "completed").sum()),
                "orders_with_rework": int(g["has_rework"].sum()),
                "median_lead_time_hours": median,
                "median_lead_time_days": median / 24 if median is not None else None,
                "example_order_uuid": g["order_uuid"].min(),
            }
        )
    # rank by orders, then the variant's text in byte order (DuckDB's default collation)
    rows.sort(key=lambda r: (-r["orders"], r["variant"].encode()))
    cumulative = 0
    for rank, row in enumerate(rows, start=1):
        cumulative += row["orders"]
        row.update(variant_rank=rank, cumulative_share=cumulative / total)
    return rows


def data_quality_issues(ev: pd.DataFrame, orders_df: pd.DataFrame) -> set[tuple[str, str]]:
    o = orders_df.set_index("order_uuid")
    is_order = ev["object_type"] == "order"
    submitted = ev["object_uuid"].map(o["submitted_at"]).where(is_order)
    since = ev["object_uuid"].map(o["status_since"]).where(is_order)
    final = ev["object_uuid"].map(o["is_final"]).where(is_order).fillna(False).astype(bool)
    rules = {
        "unknown_event_type": ev["unknown"],
        "unreadable_event_date": ev["fallback"],
        "malformed_event_date": ev["raw_kept"] & ~ev["fallback"],
        "unreadable_appointment_date": ev["slot_invalid"],
        "event_date_after_creation": ev["ahead"].fillna(False).astype(bool),
        "before_submission": (ev["business"] < submitted).fillna(False),
        "after_final_state": final & (ev["business"] > since).fillna(False),
        "negative_stage_duration": _ends_a_negative_stage(ev, o),
    }
    return {(issue, uuid) for issue, mask in rules.items() for uuid in ev.loc[mask.astype(bool), "event_uuid"]}


MILESTONE_TYPES = {
    "submitted_at": ("order-submitted",),
    "acknowledged_at": ("order-acknowledged",),
    "running_at": ("order-running",),
    "completed_at": ("order-completed",),
    "rejected_at": ("order-rejected",),
    "appointment_agreed_at": ("order-appointment-agreed",),
    "intervention_result_at": ("order-on-site-intervention-succeeded", "order-on-site-intervention-failed"),
    "saturated_at": ("order-localloop-saturation", "order-network-saturation"),
    "desaturation_planned_at": ("order-localloop-desaturation-planned", "order-network-desaturation-planned"),
}


def _ends_a_negative_stage(ev: pd.DataFrame, o: pd.DataFrame) -> pd.Series:
    """The event that ends a stage dated before the one starting it."""
    hit = pd.Series(False, index=ev.index)
    for start, end in STAGES.values():
        negative = o.index[o[end] < o[start]]
        ends_at = ev["object_uuid"].map(o[end])
        hit |= ev["object_uuid"].isin(negative) & ev["type"].isin(MILESTONE_TYPES[end]) & (ev["business"] == ends_at)
    return hit


def provider_lateness(ev: pd.DataFrame) -> list[dict]:
    df = ev[ev["event"].notna()].copy()
    df["lateness"] = (df["created"] - df["event"]) / HOUR

    def compute(g):
        x = g["lateness"]
        return {
            "events": len(g),
            "mean_lateness_hours": float(x.mean()),
            "median_lateness_hours": _q(x, 0.5),
            "p90_lateness_hours": _q(x, 0.9),
            "p99_lateness_hours": _q(x, 0.99),
            "max_lateness_hours": float(x.max()),
            "share_later_than_1_hour": float((x > 1).mean()),
            "share_later_than_1_day": float((x > 24).mean()),
        }

    rows = [{"grain": "event_type", "event_type": t, **compute(g)} for t, g in df.groupby("type")]
    return [*rows, {"grain": "overall", "event_type": None, **compute(df)}]


def endpoints(ev: pd.DataFrame) -> set[tuple]:
    out = set()
    for row in ev[ev["type"] == "order-completed"].itertuples():
        for n, ep in enumerate((row.data or {}).get("endpoints") or []):
            out.add((row.event_uuid, n, ep.get("endpoint_uuid"), ep.get("type"), ep.get("reference")))
    return out


def cri_files(ev: pd.DataFrame) -> set[tuple]:
    out = set()
    for row in ev[ev["type"] == catalogue.CRI_EVENT_TYPE].itertuples():
        for label, url in (row.data or {}).items():
            parts = urlsplit(url)
            out.add((row.event_uuid, row.object_uuid, label, urlunsplit(parts._replace(query="", fragment=""))))
    return out


def normalise(value):
    """One spelling for missing values and timestamps on both sides of a comparison."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- the delivery forecast, at the feed's now, written again from the rules in forecast.yml
VOIDS_APPOINTMENT = {
    "order-appointment-declined",
    "order-appointment-deferred",
    "order-appointment-missed",
    "order-requalified",
    "order-localloop-saturation",
}
TOLERANCE = 1e-9

# the events one kind of order alone emits, read off the reference's "Events by type of order"
# here (not from the seed): an order showing one is of that kind
REVEALS_KIND = {
    **dict.fromkeys(
        [
            "order-localloop-saturation",
            "order-localloop-desaturation-quote-emitted",
            "order-localloop-desaturation-quote-accepted",
            "order-localloop-desaturation-planned",
            "order-network-saturation",
            "order-network-desaturation-planned",
            "order-requalified",
            "order-appointment-confirmed",
            "order-appointment-declined",
        ],
        "Activate Create",
    ),
    **dict.fromkeys(
        [
            "order-sensibleaccess",
            "order-sensibleaccess-orderconfirmed",
            "order-delayed",
            "order-delayed-orderconfirmed",
        ],
        "Activate Activate",
    ),
    **dict.fromkeys(
        [
            "order-on-site-intervention-succeeded",
            "order-on-site-intervention-failed",
            "order-appointment-deferred",
            "order-cri",
        ],
        "Fiber Pro",
    ),
}


def order_kinds(ev: pd.DataFrame) -> dict[str, tuple[str, pd.Timestamp]]:
    """order_uuid -> (its kind, when first revealed), for the orders whose events reveal one kind."""
    kinds = {}
    revealing = ev[(ev["object_type"] == "order") & ev["type"].isin(list(REVEALS_KIND))]
    for order_uuid, g in revealing.groupby("object_uuid"):
        found = {REVEALS_KIND[t] for t in g["type"]}
        if len(found) == 1:
            kinds[order_uuid] = (found.pop(), g["business"].min())
    return kinds


def _stretches(ev: pd.DataFrame, orders_df: pd.DataFrame) -> pd.DataFrame:
    """Each order's time in one non-final status, to the next status event."""
    # one dict per order: a DataFrame's .at costs about a millisecond, eight times a stretch
    columns = ["submitted_at", "saturated_at", "kind", "kind_known_at", "outcome", "status_since", "is_final"]
    info = orders_df.set_index("order_uuid")[columns].to_dict("index")
    rows = []
    statuses = ev[(ev["object_type"] == "order") & ev["type"].isin(list(STATUS))]
    for order_uuid, g in statuses.groupby("object_uuid", sort=False):
        times = list(g["business"])
        o = info[order_uuid]
        for i, type_ in enumerate(g["type"]):
            if STATUS[type_] in FINAL:
                continue
            rows.append(
                {
                    "order_uuid": order_uuid,
                    "stage": STATUS[type_],
                    "entered": times[i],
                    "left": times[i + 1] if i + 1 < len(times) else None,
                    "submitted": o["submitted_at"],
                    "saturated": o["saturated_at"],
                    "kind": o["kind"],
                    "kind_at": o["kind_known_at"],
                    "outcome": o["outcome"],
                    "ended": o["status_since"] if o["is_final"] else None,
                }
            )
    return pd.DataFrame(rows)


def _km_quantiles(remaining: list[float], completed: list[bool]) -> tuple[float | None, float | None]:
    """Kaplan-Meier: the first time the share not yet completed falls to 1/2, and to 1/10."""
    survival, p50, p90 = 1.0, None, None
    leaving = Counter(remaining)
    done = Counter(r for r, c in zip(remaining, completed, strict=True) if c)
    at_risk = len(remaining)
    for t in sorted(leaving):
        if done[t]:
            survival *= 1 - done[t] / at_risk
            if p50 is None and survival <= 0.5 + TOLERANCE:
                p50 = t
            if survival <= 0.1 + TOLERANCE:
                p90 = t
                break
        at_risk -= leaving[t]
    return p50, p90


def _class_start(hours: float, classes: list[float]) -> float:
    return max(c for c in [0, *classes] if c <= hours)


def open_order_forecast(
    ev: pd.DataFrame,
    orders_df: pd.DataFrame,
    classes: list[float],
    min_orders: int = 20,
    target_days: float = 30,
    learning_days: float = 180,
):
    now = ev["created"].max()
    s = _stretches(ev, orders_df)
    s = s[s["submitted"].notna() & (s["entered"] <= now) & (s["submitted"] <= now)].copy()
    s["finished"] = s["ended"].notna() & (s["ended"] <= now)
    s["until"] = [e if f else now for e, f in zip(s["ended"], s["finished"], strict=True)]
    s["stage_until"] = [lt if lt is not None and not pd.isna(lt) and lt <= now else now for lt in s["left"]]
    s["done"] = s["finished"] & (s["outcome"] == "completed")
    going_on = (s["left"].isna() | (s["left"] > now)) & (s["ended"].isna() | (s["ended"] > now))
    open_now = s[going_on]
    # the learning window: the stretches begun in it, and those still going on
    s = s[(s["entered"] >= now - pd.Timedelta(days=learning_days)) | going_on]
    per_order = s.drop_duplicates("order_uuid")
    o = orders_df.set_index("order_uuid")
    agreed = ev[(ev["type"] == "order-appointment-agreed") & (ev["business"] <= now)].copy()
    agreed["start"] = agreed["start_date"].map(read_time)
    voids = ev[ev["type"].isin(VOIDS_APPOINTMENT)]
    rows = []
    for row in open_now.itertuples():
        in_stage = (now - row.entered) / HOUR
        age = (now - row.submitted) / HOUR
        saturated = row.saturated is not None and not pd.isna(row.saturated) and row.saturated <= now
        kind = row.kind if pd.notna(row.kind_at) and row.kind_at <= now else None
        # by stage: the stretches in that stage at the start of the order's class of time in it,
        # as they were then, that had not completed d hours later (the order itself among them)
        # (times on a curve are whole hours after the class start, rounded up)
        start = _class_start(in_stage, classes)
        same = s[(s["stage"] == row.stage) & ((s["stage_until"] - s["entered"]) / HOUR >= start)]
        point = same["entered"] + pd.Timedelta(hours=start)
        stage_t = np.ceil((same["until"] - point) / HOUR)
        same = same[stage_t >= in_stage - start]
        stage_t = stage_t[same.index]
        point = point[same.index]
        known_then = same["kind"].where(pd.to_datetime(same["kind_at"]) <= point)  # NaT: not known
        same_kind = known_then.fillna("").eq(kind or "")
        same_sat = same[((same["saturated"].notna() & (same["saturated"] <= point)) == saturated) & same_kind]
        # every order: as old as the start of the order's class of age and not completed d later
        age_start = _class_start(age, classes)
        elders = per_order[(per_order["until"] - per_order["submitted"]) / HOUR >= age_start]
        age_t = np.ceil((elders["until"] - elders["submitted"]) / HOUR - age_start)
        elders = elders[age_t >= age - age_start]
        age_t = age_t[elders.index]
        levels = {}
        for level, frame, remaining in (
            (1, same_sat, stage_t[same_sat.index] - (in_stage - start)),
            (2, same, stage_t - (in_stage - start)),
            (3, elders, age_t - (age - age_start)),
        ):
            others = int((frame["order_uuid"] != row.order_uuid).sum())
            if others:
                levels[level] = (frame, others, list(remaining))
        enough = [lv for lv, (f, _, _) in levels.items() if f["done"].sum() >= min_orders]
        level = min(enough) if enough else max(levels, default=None)
        out = {"order_uuid": row.order_uuid, "kind": kind, "stage": row.stage, "is_saturated": saturated}
        out["forecast_at"] = now
        mine = agreed[(agreed["object_uuid"] == row.order_uuid) & (agreed["start"] > now)]
        live = [
            start
            for start, at in zip(mine["start"], mine["business"], strict=True)
            if not (
                (voids["object_uuid"] == row.order_uuid) & (voids["business"] > at) & (voids["business"] <= now)
            ).any()
        ]
        appointment = max(live) if live else None
        if level is None:
            out.update(compared_with=None, comparable_orders=0, completed_orders=0, p50=None, p90=None)
        else:
            frame, others, remaining = levels[level]
            p50, p90 = _km_quantiles(remaining, list(frame["done"]))
            finished = int(frame["finished"].sum())
            out.update(
                compared_with={1: "kind, stage and saturation", 2: "stage", 3: "all orders"}[level],
                comparable_orders=others,
                completed_orders=int(frame["done"].sum()),
                probability_not_completed=(finished - int(frame["done"].sum())) / finished if finished else None,
                p50=p50,
                p90=p90,
            )
        for q in ("p50", "p90"):
            at = now + pd.Timedelta(hours=out[q]) if out[q] is not None else None
            if at is not None and appointment is not None:
                at = max(at, appointment)
            out[f"{q}_completed_at"] = at
        out["appointment_start"] = appointment
        p50_at = out["p50_completed_at"]
        out["is_forecast_late"] = (
            p50_at is not None and (p50_at - o.at[row.order_uuid, "submitted_at"]) / HOUR / 24 > target_days
        )
        rows.append(out)
    return rows
