"""The alerts store: what is new is delivered, once; the history at the first evaluation is not."""

from __future__ import annotations

from covage_pipeline.settings import load_settings


def test_the_first_alerts_after_a_first_evaluation_that_found_none_are_delivered(tmp_path):
    """The first evaluation was guessed from an empty alerts table: on a fresh deployment whose
    first evaluation found nothing, the first real alerts became the baseline, never delivered."""
    from covage_pipeline.alerts import Alert, record_new

    settings = load_settings(data_dir=tmp_path)
    history = Alert("rejection:e1", "rejection", "o1", "R1", "e1", None, "order-rejected on order R1")
    assert record_new(settings, []) == []  # the first evaluation: nothing yet
    fresh = Alert("rejection:e2", "rejection", "o2", "R2", "e2", None, "order-rejected on order R2")
    assert record_new(settings, [fresh]) == [fresh]  # new since the first evaluation: delivered
    assert record_new(settings, [fresh, history]) == [history]
    other = load_settings(data_dir=tmp_path / "other")
    assert record_new(other, [history]) == []  # a first evaluation that finds some: the baseline
    assert record_new(other, [history, fresh]) == [fresh]
