"""The feed's cursor, and the one place that reads and writes it in dlt's resource state.

It never moves the committed cursor backwards, and it never hands out a start point past a page
that is not committed: dlt commits this state in the same load as the rows it describes.

Every load starts one lookback before where the last one stopped (its resume point, or the
committed cursor when it reached the end): events that became visible late, or tied on an instant
at a page boundary, are read again; the rows already stored are then recognised by
`covage_pipeline.versions`, not by anything kept here.
"""

from __future__ import annotations

import base64
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from .settings import Settings
from .timestamps import format_iso, parse_loose

_CHECKPOINTS_KEPT = 64
# keys of earlier versions of this state, dropped when the state is next written
_OBSOLETE_KEYS = ("resume_after", "resume_page_size", "tail_uuids")


def build_cursor(instant: datetime) -> str:
    """A `sort_value` for an instant, encoded exactly as the reference's examples are."""
    return base64.b64encode(orjson.dumps([format_iso(instant)])).decode()


@dataclass(frozen=True)
class Position:
    """A place in the feed: the `sort_value` of an item and the creation_date it stands for."""

    creation_date: datetime
    sort_value: str

    def as_state(self) -> dict[str, str]:
        return {"creation_date": format_iso(self.creation_date), "sort_value": self.sort_value}

    @classmethod
    def from_state(cls, value: object) -> Position | None:
        if not isinstance(value, dict) or not value.get("sort_value"):
            return None
        instant = parse_loose(value.get("creation_date"))
        return cls(instant, value["sort_value"]) if instant is not None else None


@dataclass(frozen=True)
class Start:
    """Where a load begins: the `after` of its first request (None: the beginning of the feed) and
    the instant that token stands for."""

    after: str | None
    instant: datetime | None


@dataclass
class CursorState:
    """The typed view of the `events` resource state.

    - `cursor`: the newest item committed (what monitoring shows; never moves backwards);
    - `resume`: where the last load stopped when it stopped before the end of the feed (a chunk
      limit, or a page it left to the next load); None when it reached the end;
    - `checkpoints`: (creation_date, sort_value) of recent page ends, for `cursor_mode=opaque`,
      where no cursor is ever built from a timestamp;
    - `stalled`: set when the API stopped making progress (the same page again): the runner
      reports it after the load that kept everything new has committed;
    - `merge_next`: the last load, an append, stopped before a page that replaces stored
      versions: the next one merges from its start;
    - `from_start`: the last load stopped before the end while its pages still grew from the
      beginning of the feed (a tie wider than a page at the feed's first instant, so no `after`
      to resume from yet): the next one starts at the beginning again, not past its cursor.
    """

    cursor: Position | None = None
    resume: Position | None = None
    checkpoints: list[list[str]] = field(default_factory=list)
    stalled: str | None = None
    merge_next: bool = False
    from_start: bool = False

    @classmethod
    def read(cls, state: MutableMapping) -> CursorState:
        # a state written before `resume` existed has no resume point: its next load starts one
        # lookback before the cursor, which re-reads at least as much
        return cls(
            cursor=Position.from_state(state.get("cursor")),
            resume=Position.from_state(state.get("resume")),
            checkpoints=[list(cp) for cp in state.get("checkpoints", [])],
            stalled=state.get("stalled"),
            merge_next=bool(state.get("merge_next")),
            from_start=bool(state.get("from_start")),
        )

    def write(self, state: MutableMapping) -> None:
        for key in _OBSOLETE_KEYS:
            state.pop(key, None)
        if self.cursor is not None:
            state["cursor"] = self.cursor.as_state()
        if self.resume is not None:
            state["resume"] = self.resume.as_state()
        else:
            state.pop("resume", None)
        state["reached_end"] = self.reached_end
        if self.checkpoints:
            state["checkpoints"] = self.checkpoints
        if self.stalled:
            state["stalled"] = self.stalled
        else:
            state.pop("stalled", None)
        for flag in ("merge_next", "from_start"):
            if getattr(self, flag):
                state[flag] = True
            else:
                state.pop(flag, None)

    @property
    def progress(self) -> tuple:
        """What a load changed: a run that sees the same twice goes round in circles."""
        return (self.cursor, self.resume, self.merge_next, self.from_start)

    @property
    def reached_end(self) -> bool:
        return self.resume is None and not self.from_start

    def start(self, settings: Settings, since: datetime | None = None) -> Start:
        """The first `after` of a load: `since`, else one lookback before the resume point or
        the committed cursor, else `start_date`, else the beginning of the feed."""
        if since is not None:
            instant = since
        else:
            base = None if self.from_start else self.resume or self.cursor
            if base is not None:
                instant = base.creation_date - timedelta(seconds=settings.lookback_s)
            elif settings.start_date:
                instant = parse_loose(settings.start_date)
            else:
                return Start(None, None)
        if instant is None:
            return Start(None, None)
        if settings.cursor_mode == "built":
            return Start(build_cursor(instant), instant)
        # opaque mode: the newest checkpoint at or before the instant (the API's own token)
        earlier = [(parse_loose(cp[0]), cp[1]) for cp in self.checkpoints]
        earlier = [cp for cp in earlier if cp[0] is not None and cp[0] <= instant]
        if not earlier:
            return Start(None, None)
        checkpoint, token = max(earlier)
        return Start(token, checkpoint)

    def advance(self, last: Position | None, resume: Position | None, has_next: bool, settings: Settings) -> None:
        """After a committed page: `last` is its newest item, `resume` where the next page starts
        (None: the beginning of the feed), `has_next` whether the feed goes on after it."""
        if last is not None and (self.cursor is None or last.creation_date >= self.cursor.creation_date):
            self.cursor = last
        self.resume = resume if has_next else None
        self.from_start = has_next and resume is None
        if resume is not None and settings.cursor_mode == "opaque":
            self._checkpoint(resume, settings)
        elif last is not None and settings.cursor_mode == "opaque":
            self._checkpoint(last, settings)

    def _checkpoint(self, position: Position, settings: Settings) -> None:
        entry = [format_iso(position.creation_date), position.sort_value]
        if self.checkpoints and self.checkpoints[-1] == entry:
            return
        self.checkpoints.append(entry)
        # keep what a lookback from the newest can reach, plus one older checkpoint to start from
        horizon = position.creation_date - timedelta(seconds=2 * settings.lookback_s)
        while len(self.checkpoints) > 2 and (parse_loose(self.checkpoints[1][0]) or horizon) <= horizon:
            self.checkpoints.pop(0)
        del self.checkpoints[:-_CHECKPOINTS_KEPT]
