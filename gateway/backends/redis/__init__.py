"""Redis for the gateway: clients for one Redis, Sentinel or a Cluster (`client.py`), and the
cache's pipelined script calls (`pipelining.py` over `wire.py`)."""
