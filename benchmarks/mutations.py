"""Plausible bugs planted one at a time: does a test fail on each? (on demand, not in `make test`)

Each mutation replaces one piece of code with a believable mistake, in a copy of the repository,
then runs the test files that should notice; a mutation is caught when they fail. The copy is
imported first (PYTHONPATH), so the installed package is never touched.

    .venv/bin/python benchmarks/mutations.py             # every mutation (about 15 minutes)
    .venv/bin/python benchmarks/mutations.py --only lookback
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = (
    # -- versions: which one of two versions wins
    Mutation(
        "older version wins over the stored one",
        "covage_pipeline/versions.py",
        "return old_mod is None or (new_mod is not None and new_mod > old_mod)",
        "return new_mod is None or (old_mod is not None and new_mod < old_mod)",
        ("tests/test_hostile_api.py", "tests/test_emulator_faults.py"),
    ),
    Mutation(
        "a newer version treated as an unchanged re-read (updates never stored)",
        "covage_pipeline/versions.py",
        "    if new_mod != old_mod:\n        return old_mod is None",
        "    if new_mod != old_mod:\n        return None if new_mod and old_mod and new_mod > old_mod "
        "else old_mod is None",
        ("tests/test_emulator_faults.py",),
    ),
    Mutation(
        "within a batch the version served first wins a tie",
        "covage_pipeline/versions.py",
        "_rank(mods[i], created[i]) >= _rank(mods[j], created[j])",
        "_rank(mods[i], created[i]) > _rank(mods[j], created[j])",
        ("tests/test_hostile_api.py",),
    ),
    Mutation(
        "the default lookback set to 0",
        "covage_pipeline/settings.py",
        "DEFAULT_LOOKBACK_S = 900.0",
        "DEFAULT_LOOKBACK_S = 0.0",
        ("tests/test_emulator_faults.py", "tests/test_cli_pipeline.py"),
    ),
    Mutation(
        "the lookback ignored when a load starts",
        "covage_pipeline/cursor.py",
        "instant = base.creation_date - timedelta(seconds=settings.lookback_s)",
        "instant = base.creation_date",
        ("tests/test_extraction.py",),
    ),
    # -- the cursor
    Mutation(
        "the cursor allowed to move backwards",
        "covage_pipeline/cursor.py",
        "if last is not None and (self.cursor is None or last.creation_date >= self.cursor.creation_date):",
        "if last is not None:",
        ("tests/test_extraction.py::test_full_refresh_and_since",),
    ),
    Mutation(
        "the tie-safe step back disabled (after = the page's last item)",
        "covage_pipeline/paginator.py",
        "        if earlier is not None:\n            target, self.tail",
        "        if False:\n            target, self.tail",
        ("tests/test_extraction.py::test_ties_at_page_boundaries_are_not_lost",),
    ),
    Mutation(
        "a short page taken for the end of the feed",
        "covage_pipeline/paginator.py",
        "        if not served or (not data and self._grown_from is None):",
        "        if not served or len(served) < self.page_size or (not data and self._grown_from is None):",
        ("tests/test_hostile_api.py",),
    ),
    Mutation(
        "a copy earlier in the feed undoes a later one of the same date",
        "covage_pipeline/versions.py",
        'return incoming["creation_date"] >= stored["creation_date"]',
        "return True",
        (
            "tests/test_hostile_api.py::test_a_copy_earlier_in_the_feed_never_undoes_a_later_one_of_the_same_date",
            "tests/test_hostile_api.py::test_a_payload_rewritten_at_a_later_position_settles_without_going_round",
        ),
    ),
    # -- what is stored
    Mutation(
        "URL tokens not stripped",
        "covage_pipeline/records.py",
        '    if isinstance(value, str):\n        if "://" in value',
        '    if isinstance(value, str):\n        if False and "://" in value',
        ("tests/test_extraction.py",),
    ),
    Mutation(
        "a PM hour read as AM",
        "covage_pipeline/timestamps.py",
        "                hour += 12",
        "                hour += 0",
        ("tests/test_extraction.py::test_malformed_timestamps_cri_links_and_unknown_types",),
    ),
    Mutation(
        "quarantined items dropped",
        "covage_pipeline/source.py",
        "        if page.quarantined:",
        "        if False:",
        ("tests/test_extraction_reliability.py",),
    ),
    Mutation(
        "a full batch waits for a page that ends on no instant (rows reach dlt once a chunk)",
        "covage_pipeline/source.py",
        "            ends_tied = full and mark.tied and not last_page",
        "            ends_tied = False",
        ("tests/test_extraction.py::test_a_load_hands_its_pages_to_dlt_in_batches",),
    ),
    Mutation(
        "a batch closes inside a group of events sharing an instant",
        "covage_pipeline/source.py",
        "            if ends_tied and not _goes_on(built.table, batch[-1].mark):",
        "            if ends_tied:",
        ("tests/test_hostile_api.py::test_a_tie_wider_than_a_batch_holding_two_versions_of_an_event_settles",),
    ),
    Mutation(
        "a report recognised by our guess of its type only",
        "covage_pipeline/records.py",
        "    return (\n        isinstance(data, dict)",
        "    return False and (\n        isinstance(data, dict)",
        ("tests/test_hostile_api.py",),
    ),
    # -- the models
    Mutation(
        "completed within 7 days counted with < instead of <=",
        "sql/models/marts/delivery_stats.sql",
        "count(case when lead_time_days <= {{ days }} then 1 end)",
        "count(case when lead_time_days < {{ days }} then 1 end)",
        ("tests/test_marts_handwritten.py::test_a_delivery_window_includes_its_last_instant",),
    ),
    # -- Dagster
    Mutation(
        "the asset check on the cursor always passes",
        "dagster_defs/dlt/__init__.py",
        "passed=latest >= previous",
        "passed=True",
        ("tests/test_dagster.py::test_the_asset_checks_fail_on_what_they_guard",),
    ),
    Mutation(
        "the ingestion asset without its pool and warehouse tag",
        "dagster_defs/dlt/__init__.py",
        "        pool=POOL,\n        op_tags=WAREHOUSE_TAGS,\n",
        "",
        ("tests/test_dagster.py::test_every_writer_of_the_warehouse_is_in_its_pool",),
    ),
    Mutation(
        "a run's settings from the environment, its launchpad config ignored",
        "dagster_defs/settings.py",
        "return load_settings(**self.model_dump())",
        "return load_settings()",
        ("tests/test_dagster.py::test_settings_reach_dagster_as_one_resource_that_a_run_can_set",),
    ),
    Mutation(
        "a run may change the destination its definitions were built for",
        "dagster_defs/settings.py",
        "        if changed:\n",
        "        if False:\n",
        ("tests/test_dagster.py::test_settings_reach_dagster_as_one_resource_that_a_run_can_set",),
    ),
    # -- the emulator
    # -- what analysts see (the story's order, durations) and the delivery forecast
    Mutation(
        "simultaneous events ordered by arrival, not by the lifecycle",
        "sql/models/intermediate/int_object_events.sql",
        "order by business_time, lifecycle_rank nulls last, creation_date, event_uuid",
        "order by business_time, creation_date, event_uuid",
        ("tests/test_marts_handwritten.py::test_simultaneous_events_follow_the_lifecycle_not_their_arrival",),
    ),
    Mutation(
        "negative stage durations kept in the statistics",
        "sql/models/marts/lifecycle_stats.sql",
        "where {{ stage }}_hours >= 0",
        "where {{ stage }}_hours is not null",
        ("tests/test_marts_handwritten.py::test_lifecycle_stats",),
    ),
    Mutation(
        "the forecast learns only from orders already finished (censored ones left out)",
        "sql/macros/forecast.sql",
        "        and stages.entered_at <= cutoffs.cutoff\n        and stages.submitted_at <= cutoffs.cutoff\n"
        "        and (\n",
        "        and stages.ended_at <= cutoffs.cutoff\n        and stages.submitted_at <= cutoffs.cutoff\n"
        "        and (\n",
        ("tests/test_marts_handwritten.py::test_the_delivery_forecast_worked_out_by_hand",),
    ),
    Mutation(
        "the forecast ignores the time already spent in the stage",
        "sql/macros/forecast.sql",
        "{{ hours_between('stages.entered_at', 'cutoffs.cutoff') }} as hours_in_stage,",
        "0.0 as hours_in_stage,",
        ("tests/test_marts_handwritten.py::test_the_delivery_forecast_worked_out_by_hand",),
    ),
    Mutation(
        "the emulator's after made inclusive",
        "covage_pipeline/emulator/store.py",
        "i = 0 if q.after_us is None else bisect.bisect_right(keys, q.after_us)",
        "i = 0 if q.after_us is None else bisect.bisect_left(keys, q.after_us)",
        ("tests/test_emulator_contract.py",),
    ),
)


def copy_repository(target: Path) -> None:
    ignore = shutil.ignore_patterns(".venv", "data", ".git", "__pycache__", ".pytest_cache", ".hypothesis", "target")
    shutil.copytree(ROOT, target, ignore=ignore)


def run(mutation: Mutation, copy: Path) -> tuple[bool, float]:
    """(caught, seconds): the mutation applied in `copy`, its tests run, the file restored."""
    path = copy / mutation.path
    original = path.read_text()
    if original.count(mutation.old) != 1:
        raise SystemExit(f"{mutation.name}: the code to mutate is not found once in {mutation.path}")
    path.write_text(original.replace(mutation.old, mutation.new))
    env = {**os.environ, "PYTHONPATH": str(copy), "COVAGE_DBT_PROJECT_DIR": str(copy / "sql")}
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--timeout", "300", *mutation.tests],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
        )
    finally:
        path.write_text(original)
    return result.returncode != 0, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="run the mutations whose name contains this text")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or args.only in m.name]
    with tempfile.TemporaryDirectory(prefix="covage-mutations-") as tmp:
        copy = Path(tmp) / "repo"
        copy_repository(copy)
        results = []
        for mutation in chosen:
            caught, seconds = run(mutation, copy)
            results.append((mutation, caught))
            print(f"{'caught  ' if caught else 'SURVIVED'} {seconds:6.0f} s  {mutation.name}", flush=True)
    caught = sum(1 for _, c in results if c)
    print(f"\n{caught} of {len(results)} mutations caught")
    if caught < len(results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
