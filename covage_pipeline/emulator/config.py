"""Settings of the emulator: volumes, rates of each business outcome, realism knobs and faults.

Every knob has a default that gives a plausible feed; tests turn single knobs up to make a trap
certain (many ties, many late events) rather than relying on luck.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime


@dataclass
class FaultConfig:
    """Fault injection on the operator API (`/api/...` only). All off by default.

    Each rate is the probability that one request is hit; `seed` makes the sequence repeatable.
    """

    error_rate: float = 0.0  # starts a burst of 500/502/503
    error_burst: int = 3
    rate_limit_rate: float = 0.0  # 429 with Retry-After
    retry_after_s: int = 1
    slow_rate: float = 0.0  # answers only after `slow_s` (past a client's timeout)
    slow_s: float = 3.0
    drop_rate: float = 0.0  # connection closed in the middle of the body
    truncate_rate: float = 0.0  # 200 with a JSON body cut short
    # what a server that reads the reference otherwise, or misbehaves, does (listings only)
    duplicate_rate: float = 0.0  # a page serves one of its items twice
    bad_bytes_rate: float = 0.0  # a page holds one item with a byte that is not UTF-8
    drip_rate: float = 0.0  # the body arrives one byte every `drip_s`
    drip_s: float = 1.0
    ignore_after: bool = False  # `after` is ignored: the first page, again and again
    page_size_param: str = "both"  # which of `size` and `limit` is honoured: both, size, limit, neither
    redirect_to: str | None = None  # every listing redirected there (another origin, say)
    redirect_status: int = 302
    seed: int = 0

    def any(self) -> bool:
        rates = (
            self.error_rate,
            self.rate_limit_rate,
            self.slow_rate,
            self.drop_rate,
            self.truncate_rate,
            self.duplicate_rate,
            self.bad_bytes_rate,
            self.drip_rate,
        )
        return (
            any(rate > 0 for rate in rates)
            or self.ignore_after
            or self.page_size_param != "both"
            or self.redirect_to is not None
        )

    @classmethod
    def from_dict(cls, values: dict) -> FaultConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)


@dataclass
class EmulatorConfig:
    seed: int = 42
    orders: int = 2000  # orders submitted during the history before `start`
    history_days: float = 180.0
    orders_per_day: float | None = None  # after `start`; default keeps the history's pace
    start: datetime = field(default_factory=lambda: datetime(2026, 1, 1))
    speed: float = 0.0  # emulated seconds per real second; 0 freezes the clock (tests)
    default_page_size: int = 100
    max_page_size: int = 1000
    # tokens -> group; `admin` and `delivery` may post order-info messages
    tokens: dict[str, str] = field(default_factory=lambda: {"emulator-token": "admin"})
    # the reference's own example events (2017) beside the generated ones: the tests serve them for
    # their malformed forms; off by default, a 2017 order would stretch every monthly chart
    reference_examples: bool = False
    faults: FaultConfig = field(default_factory=FaultConfig)

    # order mix (weights)
    share_activate_create: float = 0.55
    share_activate_activate: float = 0.25
    share_fiber_pro: float = 0.20

    # business outcomes
    reject_rate: float = 0.12
    requalify_rate: float = 0.2  # share of rejected orders later requalified and completed
    cancel_rate: float = 0.05
    drop_rate: float = 0.01
    localloop_saturation_rate: float = 0.08
    network_saturation_rate: float = 0.04
    desaturation_planned_rate: float = 0.8
    appointment_declined_rate: float = 0.07
    appointment_missed_rate: float = 0.10
    appointment_deferred_rate: float = 0.08
    intervention_failed_rate: float = 0.12
    info_rate: float = 0.15
    provider_info_rate: float = 0.10
    sensible_access_rate: float = 0.10
    delayed_rate: float = 0.08
    terminate_rate: float = 0.15  # share of services terminated by a later Terminate order
    slam_rate: float = 0.04

    # realism a consumer must survive
    provider_late_share: float = 0.08  # event_date hours or days before creation_date
    event_after_creation_share: float = 0.02  # event_date slightly after creation_date
    tie_share: float = 0.10  # events stamped on a shared batch instant
    tie_bucket_s: int = 3600
    late_share: float = 0.02  # events listed only after later-created ones
    late_window_s: float = 300.0  # how late, at most (drives the client's default lookback)
    malformed_share: float = 0.005
    unknown_type_share: float = 0.003
    # corrected by the operator after creation: a later modification_date, the payload amended,
    # within `modified_window_s` of being visible (what a consumer's lookback must catch)
    modified_share: float = 0.01
    modified_window_s: float = 240.0
    # the `type` of an intervention-report event: the reference names none ("CRI"); ours is a guess
    cri_event_type: str = "order-cri"

    def pace_per_day(self) -> float:
        if self.orders_per_day is not None:
            return self.orders_per_day
        return self.orders / self.history_days if self.history_days > 0 else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["tokens"] = sorted(set(self.tokens.values()))  # groups only: tokens stay secret
        return out
