"""The emulator's event store: the clock, what is visible now, and search-after paging.

Events live in one list sorted by (creation_date, sequence), so a page is a bisect plus a short
scan. The store never shows an event before its visibility instant: that is how late visibility
is modelled (an event created at t may only be listed from t + a few minutes, after events
created later than it).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import hmac
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from . import catalogue as cat
from .config import EmulatorConfig
from .generator import LifecycleGenerator, Order, RawEvent
from .timefmt import DAY, HOUR, MINUTE, UNREADABLE_TIMESTAMP, US, iso, malformed, parse_iso, to_us

CRI_TOKEN_LIFETIME_US = 30 * MINUTE
INFO_THROTTLE_US = 5 * MINUTE
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_UUID_SPACE = 36**8
_POSTED_OFFSET = _UUID_SPACE // 2


def short_uuid(counter: int) -> str:
    """8 base-36 characters like the reference's `3cpkp1f1`; a bijection, so never a collision."""
    n = (counter * 2654435761 + 982451653) % _UUID_SPACE
    chars = []
    for _ in range(8):
        n, rem = divmod(n, 36)
        chars.append(_B36[rem])
    return "".join(reversed(chars))


def encode_cursor(value: str) -> str:
    """`sort_value` as the reference encodes it: base64 of a compact JSON array."""
    return base64.b64encode(orjson.dumps([value])).decode()


def decode_cursor(cursor: str) -> int:
    """Microseconds of a `sort_value`; ValueError with a reason when it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        value = orjson.loads(raw)
    except Exception as exc:  # binascii.Error, orjson.JSONDecodeError
        raise ValueError("cursor is not base64 of a JSON array") from exc
    if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], str)):
        raise ValueError("cursor must decode to a JSON array holding one timestamp string")
    try:
        return parse_iso(value[0])
    except ValueError as exc:
        raise ValueError(f"cursor timestamp {value[0]!r} is not an ISO datetime") from exc


class Clock:
    """Emulated time: a start instant, manual advances, and an optional real-time speed-up."""

    def __init__(self, start_us: int, speed: float = 0.0) -> None:
        self._start = start_us
        self._speed = speed
        self._t0 = time.monotonic()
        self._offset = 0

    def now_us(self) -> int:
        return self._start + self._offset + int((time.monotonic() - self._t0) * self._speed * US)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock never goes back")
        self._offset += int(seconds * US)

    def set_speed(self, speed: float) -> None:
        """From now on, `speed` emulated seconds per real second (0 freezes the clock)."""
        if speed < 0:
            raise ValueError("the clock never goes back")
        now = time.monotonic()
        self._offset += int((now - self._t0) * self._speed * US)
        self._t0, self._speed = now, speed


class Event:
    __slots__ = (
        "_listed",
        "creation_us",
        "data",
        "event_date",
        "event_us",
        "event_uuid",
        "modified_data",
        "modified_us",
        "object_type",
        "object_uuid",
        "seq",
        "type",
        "visible_us",
    )

    def __init__(
        self, seq, event_uuid, type_, object_type, object_uuid, creation_us, event_us, visible_us, event_date, data
    ):
        self.seq = seq
        self.event_uuid = event_uuid
        self.type = type_
        self.object_type = object_type
        self.object_uuid = object_uuid
        self.creation_us = creation_us
        self.event_us = event_us
        self.visible_us = visible_us
        self.event_date = event_date
        self.data = data
        self.modified_us: int | None = None  # when the operator corrects this event, if ever
        self.modified_data: dict | None = None
        self._listed: bytes | None = None

    @property
    def is_cri(self) -> bool:
        """A report: file specs the store turns into links (blob paths), or links as given."""
        return (
            isinstance(self.data, dict)
            and bool(self.data)
            and all(isinstance(v, dict) and "blob" in v for v in self.data.values())
        )

    def modified(self, now_us: int) -> bool:
        return self.modified_us is not None and self.modified_us <= now_us

    def current_data(self, now_us: int) -> dict | None:
        return self.modified_data if self.modified(now_us) else self.data

    def fields(self, data: dict | None, now_us: int) -> dict:
        created = iso(self.creation_us)
        return {
            "model": "event",
            "event_uuid": self.event_uuid,
            "type": self.type,
            "object_type": self.object_type,
            "object_uuid": self.object_uuid,
            "event_date": self.event_date,
            "creation_date": created,
            "modification_date": iso(self.modified_us) if self.modified(now_us) else created,
            "data": data,
        }


@dataclass(frozen=True)
class ListQuery:
    sort: str = "creation_date"
    direction: str = "asc"
    after_us: int | None = None
    size: int = 100
    object_type: str | None = None
    object_uuid: str | None = None


# The reference's own examples, served as it shows them. The reference contradicts itself on
# `109ao75u` (object 9h3gy2i9 in one listing, e73cafe9-... in the other); we keep the second.
REFERENCE_EXAMPLES: tuple[dict, ...] = (
    {
        "event_uuid": "zk5c0whk",
        "type": "order-submitted",
        "object_uuid": "e73cafe9-4785-441e-ab75-22ffa806a313",
        "event_date": "2017-05-09T13:51:16.400666",
        "creation_date": "2017-05-09T13:51:16.972576",
    },
    {
        "event_uuid": "109ao75u",
        "type": "order-running",
        "object_uuid": "e73cafe9-4785-441e-ab75-22ffa806a313",
        "event_date": "2017-05-09T15:57:59.573393",
        "creation_date": "2017-05-09T15:57:59.311887",
    },
    {
        "event_uuid": "lrgecnfi",
        "type": "order-running",
        "object_uuid": "1i0cvu4c",
        "event_date": "2017-05-09T16:1:04 AM.637766",
        "event_date_sane": "2017-05-09T16:01:04.637766",
        "creation_date": "2017-05-09T15:58:59.011698",
    },
    {
        "event_uuid": "3cpkp1f1",
        "type": "order-running",
        "object_uuid": "1i0cvu4c",
        "event_date": "2017-05-09T16:01:06.196355",
        "creation_date": "2017-05-09T15:59:55.669742",
    },
)


class EventStore:
    """All events of one emulated operator, generated lazily as the clock moves."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock(to_us(config.start), config.speed)
        self._lock = threading.RLock()
        self._generator = LifecycleGenerator(config)
        self._arrivals = self._generator.arrivals()
        self._next_arrival: tuple[int, int] | None = next(self._arrivals, None)
        self._realism = random.Random(f"{config.seed}:realism")
        self._secret = hashlib.sha256(f"blob-secret:{config.seed}".encode()).digest()
        self._seq = 0
        self._posted = 0
        self.blob_versions: dict[str, int] = {}  # a file replaced at the source: its version goes up
        self.revoked_blobs: set[str] = set()  # files the store refuses whatever the token
        self.blob_downloads = 0
        self._events: list[Event] = []
        self._keys: list[int] = []
        self._by_uuid: dict[str, Event] = {}
        self._by_object: dict[str, list[Event]] = {}
        self._orders: dict[str, Order] = {}
        self._by_event_date: tuple[list[int], list[Event]] | None = None
        self._max_ahead_us = 0  # the most an event_date runs ahead of its creation_date
        self._generated_until = -(2**62)
        if config.reference_examples:
            self._add_reference_examples()
        self.sync()

    # -- generation ---------------------------------------------------------------------------

    def sync(self) -> int:
        """Generates every order submitted up to now (plus a day ahead); returns now."""
        now = self.clock.now_us()
        if now > self._generated_until:
            with self._lock:
                if now > self._generated_until:
                    self._generate_until(now + DAY)
        return now

    def _generate_until(self, until_us: int) -> None:
        new: list[Event] = []
        while self._next_arrival is not None and self._next_arrival[1] <= until_us:
            index, submitted = self._next_arrival
            bundle = self._generator.bundle(index, submitted)
            for order in bundle.orders:
                self._orders[order.order_uuid] = order
            new.extend(self._realise(raw) for raw in bundle.events)
            self._next_arrival = next(self._arrivals, None)
        self._generated_until = until_us
        if new:
            self._insert(new)

    def _realise(self, raw: RawEvent) -> Event:
        """Gives a raw event its identity, creation instant, visibility and printed event_date."""
        r = self._realism
        cfg = self.config
        business = raw.business_us
        if r.random() < cfg.provider_late_share:
            delay = int(HOUR * (0.5 + r.expovariate(1 / 18.0)))  # hours to days
        else:
            delay = int(r.uniform(0.2, 90.0) * US)
        creation = business + delay
        if r.random() < cfg.tie_share:
            bucket = cfg.tie_bucket_s * US
            creation = (creation // bucket + 1) * bucket  # a provider's batch instant
        event_us = business
        if r.random() < cfg.event_after_creation_share:
            event_us = creation + int(r.uniform(0.1, 120.0) * US)
            self._max_ahead_us = max(self._max_ahead_us, event_us - creation)
        visible = creation
        if r.random() < cfg.late_share:
            visible = creation + int(r.uniform(1.0, cfg.late_window_s) * US)
        if r.random() < cfg.malformed_share:
            event_date = UNREADABLE_TIMESTAMP if r.random() < 0.1 else malformed(event_us, r.random())
        else:
            event_date = iso(event_us)
        type_ = cfg.cri_event_type if raw.type == cat.CRI_EVENT_TYPE else raw.type
        self._seq += 1
        ev = Event(
            self._seq,
            short_uuid(self._seq),
            type_,
            raw.object_type,
            raw.object_uuid,
            creation,
            event_us,
            visible,
            event_date,
            raw.data,
        )
        if r.random() < cfg.modified_share:
            # corrected by the operator minutes later: a new modification_date, the payload amended
            ev.modified_us = visible + int(r.uniform(10.0, cfg.modified_window_s) * US)
            ev.modified_data = _amended(raw.data)
        return ev

    def _add_reference_examples(self) -> None:
        examples = []
        for ex in REFERENCE_EXAMPLES:
            creation = parse_iso(ex["creation_date"])
            event_us = parse_iso(ex.get("event_date_sane", ex["event_date"]))
            self._seq += 1
            examples.append(
                Event(
                    self._seq,
                    ex["event_uuid"],
                    ex["type"],
                    "order",
                    ex["object_uuid"],
                    creation,
                    event_us,
                    creation,
                    ex["event_date"],
                    None,
                )
            )
        self._insert(examples)

    def replay(self, events: list[dict]) -> int:
        """Serves `events` (API-shaped dicts) as they are: a captured feed or a hand-written log.

        `event_date` is served verbatim, malformed or not; `creation_date` must be in the normal
        form (it is the cursor). Returns the number of events added.
        """
        realised = []
        with self._lock:
            for item in events:
                creation = parse_iso(item["creation_date"])
                try:
                    business = parse_iso(item["event_date"])
                except (TypeError, ValueError):
                    business = creation  # only orders `sort=event_date` listings
                self._seq += 1
                realised.append(
                    Event(
                        self._seq,
                        item["event_uuid"],
                        item["type"],
                        item.get("object_type", "order"),
                        item["object_uuid"],
                        creation,
                        business,
                        creation,
                        item.get("event_date"),
                        item.get("data"),
                    )
                )
            if realised:
                self._insert(realised)
        return len(realised)

    def correct(self, event_uuid: str, **changes) -> Event:
        """The operator corrects an event now: a new modification_date, and any of `type`,
        `object_type`, `object_uuid`, `event_date` (text, as served) and `data` changed. Its
        creation_date stays, so a consumer sees the correction only while it re-reads that far
        back (its lookback)."""
        unknown = set(changes) - {"type", "object_type", "object_uuid", "event_date", "data"}
        if unknown:
            raise ValueError(f"an event has no field {sorted(unknown)} to correct")
        now = self.sync()
        with self._lock:
            ev = self._by_uuid[event_uuid]
            if "object_uuid" in changes and changes["object_uuid"] != ev.object_uuid:
                self._by_object[ev.object_uuid].remove(ev)
                self._by_object.setdefault(changes["object_uuid"], []).append(ev)
                self._by_object[changes["object_uuid"]].sort(key=_creation_key)
            ev.type = changes.get("type", ev.type)
            ev.object_type = changes.get("object_type", ev.object_type)
            ev.object_uuid = changes.get("object_uuid", ev.object_uuid)
            if "event_date" in changes:
                ev.event_date = changes["event_date"]
                ev.event_us = parse_iso(ev.event_date)
                self._by_event_date = None
            ev.modified_data = changes.get("data", ev.current_data(now))
            ev.modified_us = now
            ev._listed = None
            return ev

    def _insert(self, new: list[Event]) -> None:
        for ev in new:
            self._by_uuid[ev.event_uuid] = ev
            self._by_object.setdefault(ev.object_uuid, []).append(ev)
        if self._events and new[0].creation_us >= self._keys[-1] and len(new) == 1:
            self._events.append(new[0])
            self._keys.append(new[0].creation_us)
        else:
            self._events.extend(new)
            self._events.sort(key=_creation_key)
            self._keys = [ev.creation_us for ev in self._events]
        for ev in new:
            objs = self._by_object[ev.object_uuid]
            if len(objs) > 1 and _creation_key(objs[-2]) > _creation_key(objs[-1]):
                objs.sort(key=_creation_key)
        self._by_event_date = None

    # -- reading ------------------------------------------------------------------------------

    def list_events(self, query: ListQuery) -> tuple[int, list[Event]]:
        """(now, page) for a listing query, with the API's strictly-later `after` semantics."""
        now = self.sync()
        with self._lock:
            return now, list(self._page(query, now))

    def _page(self, q: ListQuery, now: int) -> Iterator[Event]:
        if q.object_uuid is not None:
            pool = sorted(self._by_object.get(q.object_uuid, ()), key=_key_for(q.sort))
            keys = [_key_for(q.sort)(ev)[0] for ev in pool]
            horizon = None
        elif q.sort == "creation_date":
            pool, keys, horizon = self._events, self._keys, now
        else:
            keys, pool = self._event_date_index()
            horizon = now + self._max_ahead_us
        taken = 0
        if q.direction == "asc":
            i = 0 if q.after_us is None else bisect.bisect_right(keys, q.after_us)
            step, stop = 1, len(pool)
        else:
            top = q.after_us if q.after_us is not None else (horizon if horizon is not None else 2**62)
            i = (bisect.bisect_left(keys, top) if q.after_us is not None else bisect.bisect_right(keys, top)) - 1
            step, stop = -1, -1
        while i != stop and taken < q.size:
            ev = pool[i]
            i += step
            if horizon is not None and step == 1 and keys[i - 1] > horizon:
                break
            if ev.visible_us > now:
                continue
            if q.object_type is not None and ev.object_type != q.object_type:
                continue
            if q.object_uuid is not None and ev.object_uuid != q.object_uuid:
                continue
            taken += 1
            yield ev

    def _event_date_index(self) -> tuple[list[int], list[Event]]:
        if self._by_event_date is None:
            ordered = sorted(self._events, key=lambda ev: (ev.event_us, ev.seq))
            self._by_event_date = ([ev.event_us for ev in ordered], ordered)
        return self._by_event_date

    def get(self, event_uuid: str) -> Event | None:
        now = self.sync()
        ev = self._by_uuid.get(event_uuid)
        if ev is None or ev.visible_us > now:
            return None
        return ev

    def visible(self) -> list[Event]:
        now = self.sync()
        with self._lock:
            end = bisect.bisect_right(self._keys, now)
            return [ev for ev in self._events[:end] if ev.visible_us <= now]

    def orders(self) -> list[Order]:
        """Orders submitted so far (their kind is the emulator's knowledge, not the API's)."""
        now = self.sync()
        return sorted(
            (o for o in self._orders.values() if o.submitted_us <= now),
            key=lambda o: o.submitted_us,
        )

    def order(self, order_uuid: str) -> Order | None:
        now = self.sync()
        o = self._orders.get(order_uuid)
        return o if o is not None and o.submitted_us <= now else None

    # -- serialising --------------------------------------------------------------------------

    def body(self, ev: Event, base_url: str) -> bytes:
        """The event's JSON without `sort_value`; CRI links get a fresh token on every display."""
        now = self.clock.now_us()
        data = ev.current_data(now)
        data = self.cri_links(data, base_url) if ev.is_cri else data
        return orjson.dumps(ev.fields(data, now))

    def listed(self, ev: Event, sort: str, base_url: str) -> bytes:
        """The event as a list item. The `creation_date` form is cached: it is the hot path.

        The cache holds a copy: orjson's own output keeps a 4 KB buffer per object, which would
        cost gigabytes at a million events.
        """
        now = self.clock.now_us()
        pending = ev.modified_us is not None and not ev.modified(now)
        if sort == "creation_date" and ev._listed is not None and not pending:
            return ev._listed
        data = ev.current_data(now)
        data = self.cri_links(data, base_url) if ev.is_cri else data
        fields = ev.fields(data, now)
        key = fields["creation_date"] if sort == "creation_date" else iso(ev.event_us)
        fields["sort_value"] = encode_cursor(key)
        out = memoryview(orjson.dumps(fields)).tobytes()
        if sort == "creation_date" and not ev.is_cri and not pending:
            ev._listed = out  # final: either never modified, or modified already
        return out

    def page_bytes(self, events: list[Event], sort: str, base_url: str) -> bytes:
        return b"[" + b",".join(self.listed(ev, sort, base_url) for ev in events) + b"]"

    def as_listed(self, ev: Event, base_url: str = "http://127.0.0.1") -> dict:
        return orjson.loads(self.listed(ev, "creation_date", base_url))

    def ground_truth(self, base_url: str = "http://127.0.0.1") -> list[dict]:
        """Every event visible now, in `creation_date` order, as the API would list it."""
        return [self.as_listed(ev, base_url) for ev in self.visible()]

    # -- CRI files (the blob-storage stand-in) --------------------------------------------------

    def cri_links(self, files: dict, base_url: str) -> dict:
        expiry = self.clock.now_us() + CRI_TOKEN_LIFETIME_US
        out = {}
        for label, spec in files.items():
            blob = spec["blob"]
            out[label] = f"{base_url}/blob/{blob}?se={self._token(blob, expiry)}"
        return out

    def knows_order(self, order_uuid: str) -> bool:
        """An order the emulator generated, or any object whose visible events are order events
        (the reference's own examples, a replayed log)."""
        if self.order(order_uuid) is not None:
            return True
        now = self.sync()
        return any(ev.object_type == "order" and ev.visible_us <= now for ev in self._by_object.get(order_uuid, ()))

    def _token(self, blob: str, expiry_us: int) -> str:
        sig = hmac.new(self._secret, f"{blob}|{expiry_us}".encode(), hashlib.sha256).hexdigest()[:32]
        return f"{expiry_us}-{sig}"

    def check_blob_token(self, blob: str, token: str) -> str | None:
        """None when the token opens this blob now, else why not."""
        expiry_text = token.partition("-")[0]
        if not expiry_text.isdigit() or not hmac.compare_digest(self._token(blob, int(expiry_text)), token):
            return "AuthenticationFailed"
        if self.clock.now_us() > int(expiry_text):
            return "AuthenticationFailed: token expired"
        if blob in self.revoked_blobs:
            return "AuthorizationPermissionMismatch: access to this blob was revoked"
        return None

    def blob_content(self, blob: str) -> bytes:
        """A small, valid PDF whose bytes depend only on the blob path (and its version, once replaced)."""
        self.blob_downloads += 1
        version = self.blob_versions.get(blob, 0)
        text = f"Compte rendu d'intervention - {blob}" + (f" (version {version + 1})" if version else "")
        stream = f"BT /F1 10 Tf 40 780 Td ({text}) Tj ET".encode()
        objects = [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
        out = bytearray(b"%PDF-1.4\n")
        offsets = []
        for n, obj in enumerate(objects, start=1):
            offsets.append(len(out))
            out += f"{n} 0 obj\n".encode() + obj + b"\nendobj\n"
        xref = len(out)
        out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
        for off in offsets:
            out += f"{off:010d} 00000 n \n".encode()
        out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
        return bytes(out)

    # -- writing ------------------------------------------------------------------------------

    def info_wait_s(self, order_uuid: str) -> float:
        """Seconds to wait before another message may be posted on this order (0: now)."""
        now = self.sync()
        last = max(
            (
                ev.creation_us
                for ev in self._by_object.get(order_uuid, ())
                if ev.type == "order-info" and ev.creation_us <= now
            ),
            default=None,
        )
        if last is None or now - last >= INFO_THROTTLE_US:
            return 0.0
        return (INFO_THROTTLE_US - (now - last)) / US

    def post_info(self, order_uuid: str, message: str, stop_deferred: bool | None) -> Event:
        now = self.sync()
        data: dict = {"message": message}
        if stop_deferred is not None:
            data["stop_deferred"] = stop_deferred
        with self._lock:
            self._posted += 1
            self._seq += 1
            ev = Event(
                self._seq,
                short_uuid(_POSTED_OFFSET + self._posted),
                "order-info",
                "order",
                order_uuid,
                now,
                now,
                now,
                iso(now),
                data,
            )
            # keep the main list sorted: future events may already sit after `now`
            pos = bisect.bisect_right(self._keys, now)
            self._events.insert(pos, ev)
            self._keys.insert(pos, now)
            self._by_uuid[ev.event_uuid] = ev
            objs = self._by_object.setdefault(order_uuid, [])
            objs.append(ev)
            objs.sort(key=_creation_key)
            self._by_event_date = None
        return ev

    def advance(self, seconds: float) -> int:
        self.clock.advance(seconds)
        return self.sync()

    def status(self) -> dict:
        now = self.sync()
        visible = self.visible()
        by_type: dict[str, int] = {}
        for ev in visible:
            by_type[ev.type] = by_type.get(ev.type, 0) + 1
        orders = self.orders()
        by_kind: dict[str, int] = {}
        for o in orders:
            by_kind[o.kind] = by_kind.get(o.kind, 0) + 1
        return {
            "now": iso(now),
            "events_visible": len(visible),
            "events_generated": len(self._events),
            "orders": len(orders),
            "orders_by_kind": by_kind,
            "events_by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1])),
            "first_creation_date": iso(visible[0].creation_us) if visible else None,
            "last_creation_date": iso(visible[-1].creation_us) if visible else None,
        }


def _amended(data: dict | None) -> dict | None:
    """What an operator's correction changes: a message reworded, else the payload as it was."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for key in ("message", "reason", "reject_description", "description"):
        if isinstance(out.get(key), str):
            out[key] = f"{out[key]} (corrected)"
            break
    return out


def _creation_key(ev: Event) -> tuple[int, int]:
    return (ev.creation_us, ev.seq)


def _key_for(sort: str):
    if sort == "creation_date":
        return _creation_key
    return lambda ev: (ev.event_us, ev.seq)
