"""The benchmark kit: the stack under test (`processes.py`), load generators (`wrk.py`,
`h2load.py`, `openloop.py`), the models driven (`targets.py`), runs and medians (`runs.py`),
statistics (`stats.py`), an OTLP span sink (`otlp_sink.py`) and the machine (`machine.py`)."""
