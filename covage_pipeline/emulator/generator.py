"""Deterministic order and service lifecycles, drawn from the seed.

Each order gets its own random stream (seed, index), so an order's story does not depend on how
many orders were generated before it or on when the clock asked for it. Lifecycles only use the
events `catalogue.ALLOWED_EVENTS` allows for the order's kind (plus the rare undocumented type).
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import catalogue as cat
from .config import EmulatorConfig
from .timefmt import DAY, HOUR, MINUTE, UNREADABLE_TIMESTAMP, US, iso, malformed_am, to_us


@dataclass(slots=True)
class RawEvent:
    """An event before the store gives it an identity: business time and payload only."""

    type: str
    object_type: str
    object_uuid: str
    business_us: int
    data: dict | None


@dataclass(slots=True)
class Order:
    order_uuid: str
    kind: str
    submitted_us: int
    kosc_order_ref: str
    outcome: str = "open"
    service_uuid: str | None = None


@dataclass(slots=True)
class Bundle:
    """One order's events, plus those of the service it creates and of the orders that follow."""

    orders: list[Order] = field(default_factory=list)
    events: list[RawEvent] = field(default_factory=list)


def _lognormal(r: random.Random, median_us: float, sigma: float) -> int:
    return max(US, int(median_us * math.exp(r.gauss(0.0, sigma))))


def _uuid(r: random.Random) -> str:
    return str(uuid.UUID(int=r.getrandbits(128), version=4))


class LifecycleGenerator:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._kinds = (cat.ACTIVATE_CREATE, cat.ACTIVATE_ACTIVATE, cat.FIBER_PRO)
        self._kind_weights = (
            config.share_activate_create,
            config.share_activate_activate,
            config.share_fiber_pro,
        )
        self._rejects = cat.REJECT_REASONS
        self._reject_weights = [w for *_, w in cat.REJECT_REASONS]

    # -- arrivals -----------------------------------------------------------------------------

    def arrivals(self) -> Iterator[tuple[int, int]]:
        """(index, submitted_us) of every order, in time order, forever."""
        cfg = self.config
        start_us = to_us(cfg.start)
        history_us = int(cfg.history_days * DAY)
        r = random.Random(f"{cfg.seed}:arrivals")
        index = 0
        if cfg.orders > 0 and history_us > 0:
            # history: exactly `orders` orders, uniformly spread before `start`
            times = sorted(start_us - history_us + r.randrange(history_us) for _ in range(cfg.orders))
            for t in times:
                yield index, t
                index += 1
        pace = cfg.pace_per_day()
        if pace <= 0:
            return
        t = start_us
        mean_gap = DAY / pace
        while True:
            t += max(1, int(r.expovariate(1.0) * mean_gap))
            yield index, t
            index += 1

    # -- one order ------------------------------------------------------------------------------

    def bundle(self, index: int, submitted_us: int) -> Bundle:
        r = random.Random(f"{self.config.seed}:order:{index}")
        kind = r.choices(self._kinds, self._kind_weights)[0]
        story = _Story(self, r, index)
        story.order(kind, submitted_us)
        return story.bundle


class _Story:
    """Writes one bundle; the methods follow the business process step by step."""

    def __init__(self, gen: LifecycleGenerator, r: random.Random, index: int) -> None:
        self.gen = gen
        self.cfg = gen.config
        self.r = r
        self.index = index
        self.bundle = Bundle()
        # messages are drawn at random times: kept only if they come before the order's end
        self.pending: list[RawEvent] = []

    def emit(self, order: Order | str, type_: str, t: int, data: dict | None = None) -> None:
        if isinstance(order, Order):
            object_type, object_uuid = "order", order.order_uuid
        else:
            object_type, object_uuid = "service", order
        self.bundle.events.append(RawEvent(type_, object_type, object_uuid, t, data))

    def later(self, order: Order, type_: str, t: int, data: dict | None) -> None:
        self.pending.append(RawEvent(type_, "order", order.order_uuid, t, data))

    def flush(self, end: int) -> None:
        self.bundle.events.extend(ev for ev in self.pending if ev.business_us < end)
        self.pending.clear()

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def wait(self, median_us: float, sigma: float = 0.8) -> int:
        return _lognormal(self.r, median_us, sigma)

    def stamp(self, us: int) -> str:
        """A payload timestamp: well formed, except for the configured share."""
        if self.chance(self.cfg.malformed_share):
            return UNREADABLE_TIMESTAMP if self.chance(0.1) else malformed_am(us)
        return iso(us)

    # -- orders -------------------------------------------------------------------------------

    def order(self, kind: str, t: int) -> Order:
        r = self.r
        order = Order(
            order_uuid=_uuid(r),
            kind=kind,
            submitted_us=t,
            kosc_order_ref=f"O{iso(t)[2:10].replace('-', '')}_{self.index % 100000:05d}",
        )
        self.bundle.orders.append(order)
        self.emit(order, "order-submitted", t, {"kosc_order_ref": order.kosc_order_ref})
        if kind != cat.FIBER_PRO and self.chance(self.cfg.drop_rate):
            self.emit(order, "order-dropped", t + self.wait(6 * HOUR))
            order.outcome = "dropped"
            return order
        t += self.wait(4 * HOUR, 1.0)
        self.emit(order, "order-acknowledged", t)
        # Most rejections come early (address, duplicate); the others after field checks.
        rejected = self.chance(self.cfg.reject_rate)
        if rejected and self.chance(0.5):
            t = self.reject(order, t + self.wait(10 * HOUR))
            if t < 0:
                return order
            rejected = False
        # a third of orders are acknowledged and running in the same provider batch: same instant
        t = t if self.chance(0.3) else t + self.wait(DAY, 1.0)
        self.emit(order, "order-running", t)
        if kind in (cat.ACTIVATE_CREATE, cat.ACTIVATE_ACTIVATE):
            self.messages(order, t)
        if kind != cat.TERMINATE and self.chance(self.cfg.cancel_rate):
            t += self.wait(3 * DAY)
            self.flush(t)
            self.emit(order, "order-cancelled", t, {"reason": r.choice(cat.CANCEL_REASONS)})
            order.outcome = "cancelled"
            return order
        if rejected:
            t += self.wait(3 * DAY)
            self.flush(t)
            t = self.reject(order, t)
            if t < 0:
                return order
        if kind == cat.ACTIVATE_CREATE:
            t = self.build_line(order, t)
        elif kind == cat.ACTIVATE_ACTIVATE:
            t = self.take_over_line(order, t)
        elif kind == cat.FIBER_PRO:
            t = self.fiber_pro(order, t)
        else:
            t += self.wait(3 * DAY)
        self.flush(t)
        self.complete(order, t)
        return order

    def reject(self, order: Order, t: int) -> int:
        """Rejects the order; returns -1 when that ends it, else the time it was requalified."""
        reason, code, subcode, description, _ = self.r.choices(self.gen._rejects, self.gen._reject_weights)[0]
        self.emit(
            order,
            "order-rejected",
            t,
            {
                "reject_reason": reason,
                "reject_code": code,
                "reject_subcode": subcode,
                "reject_description": description,
            },
        )
        if order.kind == cat.ACTIVATE_CREATE and self.chance(self.cfg.requalify_rate):
            t += self.wait(2 * DAY)
            self.emit(order, "order-requalified", t)
            return t
        order.outcome = "rejected"
        return -1

    def messages(self, order: Order, t: int) -> None:
        if self.chance(self.cfg.provider_info_rate):
            message, description = self.r.choice(cat.PROVIDER_INFO)
            self.later(
                order,
                "order-information-from-provider",
                t + self.wait(2 * DAY),
                {"message": message, "description": description},
            )
        if self.chance(self.cfg.info_rate):
            data: dict = {"message": "Customer asks for a call before the visit"}
            if self.chance(0.3):
                data = {"message": "Deferral lifted, customer available", "stop_deferred": True}
            self.later(order, "order-info", t + self.wait(3 * DAY), data)

    def appointment(self, order: Order, t: int, fiber: bool) -> int:
        """Agrees an appointment at `t`; returns its start time."""
        start = t + self.wait(5 * DAY, 0.6)
        self.emit(
            order,
            "order-appointment-agreed",
            t,
            {
                "start_date": self.stamp(start),
                "end_date": None if fiber else self.stamp(start + 2 * HOUR),
            },
        )
        return start

    def build_line(self, order: Order, t: int) -> int:
        """Activate Create: saturation, appointments, until the line is built."""
        cfg = self.cfg
        if self.chance(cfg.network_saturation_rate):
            t += self.wait(2 * DAY)
            self.emit(order, "order-network-saturation", t)
            if self.chance(cfg.desaturation_planned_rate):
                t += self.wait(8 * DAY)
                self.emit(order, "order-network-desaturation-planned", t)
            t += self.wait(15 * DAY)
        ll_saturated = self.chance(cfg.localloop_saturation_rate)
        for attempt in range(5):
            t += self.wait(2 * DAY)
            start = self.appointment(order, t, fiber=False)
            if ll_saturated and attempt == 0:
                # "Local loop saturated, the appointment is obsolete."
                t += self.wait(DAY)
                self.emit(order, "order-localloop-saturation", t)
                if self.chance(cfg.desaturation_planned_rate):
                    t += self.wait(10 * DAY)
                    self.emit(order, "order-localloop-desaturation-planned", t, {"desaturation_type": "LL_FREE_DESAT"})
                t += self.wait(20 * DAY)
                continue
            if self.chance(cfg.appointment_declined_rate):
                t += self.wait(DAY)
                self.emit(order, "order-appointment-declined", t)
                continue
            if self.chance(0.85):
                self.emit(order, "order-appointment-confirmed", t + self.wait(6 * HOUR))
            t = start
            if attempt < 4 and self.chance(cfg.appointment_missed_rate):
                t += self.wait(2 * HOUR)
                self.emit(order, "order-appointment-missed", t)
                continue
            break
        return t + self.wait(4 * HOUR)

    def take_over_line(self, order: Order, t: int) -> int:
        """Activate Activate: an existing line is switched over; no appointment."""
        if self.chance(self.cfg.sensible_access_rate):
            t += self.wait(DAY)
            self.emit(order, "order-sensibleaccess", t)
            t += self.wait(DAY)
            self.emit(order, "order-sensibleaccess-orderconfirmed", t)
        if self.chance(self.cfg.delayed_rate):
            t += self.wait(2 * DAY)
            self.emit(order, "order-delayed", t)
            t += self.wait(DAY)
            self.emit(order, "order-delayed-orderconfirmed", t)
        return t + self.wait(4 * DAY)

    def fiber_pro(self, order: Order, t: int) -> int:
        """Fiber Pro: appointments, on-site interventions and their reports (CRI)."""
        cfg = self.cfg
        work_orders = 0
        for attempt in range(5):
            t += self.wait(2 * DAY)
            start = self.appointment(order, t, fiber=True)
            t = start
            last = attempt == 4
            if not last and self.chance(cfg.appointment_missed_rate):
                t += self.wait(2 * HOUR)
                self.emit(order, "order-appointment-missed", t)
                continue
            if not last and self.chance(cfg.appointment_deferred_rate):
                t += self.wait(HOUR)
                self.emit(order, "order-appointment-deferred", t, {"message": "Customer absent, visit postponed"})
                continue
            t += self.wait(3 * HOUR, 0.5)
            failed = not last and self.chance(cfg.intervention_failed_rate)
            kind = "failed" if failed else "succeeded"
            self.emit(
                order,
                f"order-on-site-intervention-{kind}",
                t,
                {"message": "Blocked duct in the building" if failed else "Line installed and tested"},
            )
            work_orders += 1
            t += self.wait(2 * HOUR)
            self.emit(order, cat.CRI_EVENT_TYPE, t, self.cri_files(order, work_orders))
            if failed:
                continue
            break
        return t + self.wait(HOUR)

    def cri_files(self, order: Order, work_order: int) -> dict:
        """CRI payload before display: the store turns each path into a URL with a fresh token."""
        wo = f"WO{self.index:07d}-{work_order}"
        files = {}
        for n in range(1, self.r.randint(1, 3) + 1):
            name = ("rapport_intervention", "photos", "mesures_optiques")[n - 1]
            files[f"fichier {n}"] = {"blob": f"pvi/{order.kosc_order_ref}/{wo}/Public/{name}.pdf"}
        return files

    def complete(self, order: Order, t: int) -> None:
        r = self.r
        service_uuid = _uuid(r)
        if order.kind == cat.TERMINATE:
            # the service the Terminate order ends was set on the order by `service_life`
            service_uuid = order.service_uuid or service_uuid
        order.service_uuid = service_uuid
        order.outcome = "completed"
        alias = f"KSR{self.index:07d}{r.randrange(100):02d}"
        endpoints = [
            {
                "endpoint_uuid": _uuid(r),
                "type": "PTO" if order.kind != cat.FIBER_PRO else "ONT",
                "reference": f"FI-{r.randrange(10000):04d}-{r.randrange(10000):04d}",
            }
        ]
        data = {"endpoints": endpoints, "service_uuid": service_uuid, "service_alias": alias}
        if order.kind == cat.TERMINATE:
            data["endpoints"] = []
        self.emit(order, "order-completed", t, data)
        if order.kind == cat.TERMINATE:
            self.emit(service_uuid, "service-terminated", t + self.wait(30 * MINUTE))
        else:
            self.service_life(service_uuid, t)
        if self.chance(self.cfg.unknown_type_share):
            self.emit(order, cat.UNDOCUMENTED_EVENTS[0], t + self.wait(HOUR), {"priority": "high"})

    def service_life(self, service_uuid: str, t: int) -> None:
        t += self.wait(30 * MINUTE)
        self.emit(service_uuid, "service-activated", t)
        end = t + self.wait(400 * DAY, 1.0)
        for type_, per_year in (("service-modified", 0.3), ("service-updated", 0.5), ("service-info", 0.2)):
            at = t
            while True:
                at += int(self.r.expovariate(per_year) * 365 * DAY)
                if at >= end:
                    break
                self.emit(service_uuid, type_, at)
        if self.chance(self.cfg.unknown_type_share):
            self.emit(service_uuid, cat.UNDOCUMENTED_EVENTS[1], t + self.wait(30 * DAY), None)
        if self.chance(self.cfg.slam_rate):
            self.emit(service_uuid, "service-slammed", end)
        elif self.chance(self.cfg.terminate_rate):
            terminate = Order(
                order_uuid=_uuid(self.r),
                kind=cat.TERMINATE,
                submitted_us=end,
                kosc_order_ref=f"O{iso(end)[2:10].replace('-', '')}_{self.index % 100000:05d}T",
                service_uuid=service_uuid,
            )
            self.terminate(terminate)

    def terminate(self, order: Order) -> None:
        self.bundle.orders.append(order)
        t = order.submitted_us
        self.emit(order, "order-submitted", t, {"kosc_order_ref": order.kosc_order_ref})
        if self.chance(self.cfg.drop_rate):
            self.emit(order, "order-dropped", t + self.wait(6 * HOUR))
            order.outcome = "dropped"
            return
        t += self.wait(4 * HOUR, 1.0)
        self.emit(order, "order-acknowledged", t)
        t += self.wait(DAY)
        self.emit(order, "order-running", t)
        if self.chance(self.cfg.reject_rate / 4):
            self.reject(order, t + self.wait(DAY))
            return
        self.complete(order, t + self.wait(3 * DAY))
