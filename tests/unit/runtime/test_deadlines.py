"""How long a body may take: a floor plus its length at the minimum rate."""

from __future__ import annotations

from gateway.runtime.deadlines import BodyDeadline


def test_body_deadline_grows_with_the_declared_length() -> None:
    deadline = BodyDeadline(floor_s=10, min_rate=1000)
    assert deadline.seconds(0, 1_000_000) == 10
    assert deadline.seconds(5000, 1_000_000) == 15
    assert deadline.seconds(None, 20_000) == 30  # undeclared: as long as the limit allows
