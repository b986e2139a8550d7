"""Load tests and benchmarks. Each script says how to run it in its docstring."""
