"""Clients of what the gateway stands in front of: Triton (`triton/`) and Redis (`redis/`)."""
