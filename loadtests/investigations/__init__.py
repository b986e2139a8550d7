"""One-off measurements behind design decisions; each writes or prints its figures, and
what they found is in docs/benchmarks/ (or the doc of the part they measured)."""
