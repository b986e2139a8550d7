"""Reading counters from a Prometheus text exposition."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

# The series names of each metric type, from its family's name.
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The sum of `name` over samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples(text).items() if n == name and wanted <= have)


def exported_names(text: str) -> set[str]:
    """Every series name the exposition declares (labelled ones export no sample until used)."""
    names = {name for name, _ in samples(text)}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        base = name.removesuffix("_total")
        names |= {name} | {base + suffix for suffix in SUFFIXES.get(kind, ("",))}
    return names
