"""Per-model inference deadlines: configured, or fitted to the observed latency."""

from __future__ import annotations

import pytest

from gateway.backends.triton.model_deadlines import MIN_SAMPLES, ModelDeadlines, configured_deadline


def test_a_model_not_yet_observed_enough_gets_the_ceiling() -> None:
    deadlines = ModelDeadlines(ceiling_s=30, floor_s=2, factor=10)
    assert deadlines.deadline_s("m", 1) == 30
    for _ in range(MIN_SAMPLES - 1):
        deadlines.observe("m", 0.005, 1)
    assert deadlines.deadline_s("m", 1) == 30
    deadlines.observe("m", 0.005, 1)
    assert deadlines.deadline_s("m", 1) == 2  # 10 x 5 ms, raised to the floor


def test_the_fitted_deadline_follows_the_p99_and_scales_with_rows() -> None:
    deadlines = ModelDeadlines(ceiling_s=30, floor_s=2, factor=10)
    for i in range(200):
        deadlines.observe("slow", 0.9 if i % 50 == 0 else 0.3, 4)  # 2 % take 0.9 s
    assert deadlines.deadline_s("slow", 4) == pytest.approx(9.0)  # 10 x p99
    assert deadlines.deadline_s("slow", 16) == pytest.approx(30)  # 10 x 16 x 0.225 s/row, capped
    assert deadlines.deadline_s("slow", 1) == pytest.approx(9.0)  # never under the p99 itself
    assert deadlines.fitted() == {"slow": pytest.approx(9.0)}


def test_a_configured_deadline_wins_but_not_over_the_ceiling() -> None:
    deadlines = ModelDeadlines(ceiling_s=30, floor_s=2, factor=10)
    for _ in range(100):
        deadlines.observe("m", 0.005, 1)
    assert deadlines.deadline_s("m", 1, configured_s=0.5) == 0.5
    assert deadlines.deadline_s("m", 1, configured_s=120) == 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.5", 1.5), ("0", None), ("-1", None), ("soon", None), ("nan", None), (None, None)],
)
def test_configured_deadlines_are_positive_numbers(
    text: str | None, expected: float | None
) -> None:
    assert configured_deadline(text) == expected
