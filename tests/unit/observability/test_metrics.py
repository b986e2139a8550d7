"""Metrics: exemplars at most once per interval per series."""

from __future__ import annotations

from gateway.observability.metrics import Metrics


def test_a_series_takes_an_exemplar_at_most_once_per_interval() -> None:
    metrics = Metrics(exemplar_interval_s=3600)
    first = ("m", "1", "200", "hit")
    assert metrics.exemplar("a" * 32, first) == {"trace_id": "a" * 32}
    assert metrics.exemplar("b" * 32, first) is None  # the series has a recent one
    assert metrics.exemplar("c" * 32, ("m", "1", "200", "miss")) == {"trace_id": "c" * 32}
    assert metrics.exemplar(None, ("other",)) is None  # not traced
    every = Metrics(exemplar_interval_s=0)
    assert [every.exemplar(t, first) for t in ("a", "b")] == [{"trace_id": "a"}, {"trace_id": "b"}]
