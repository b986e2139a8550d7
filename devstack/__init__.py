"""Services the gateway can run for itself on one machine: Triton and Redis.

`gateway up` uses them when no external Triton or Redis is configured; the integration
tests use them to run against the real servers.
"""

from devstack.process import EmbeddedServiceError, ManagedProcess
from devstack.redis import EmbeddedRedis
from devstack.triton import EmbeddedTriton, TritonEndpoints

__all__ = [
    "EmbeddedRedis",
    "EmbeddedServiceError",
    "EmbeddedTriton",
    "ManagedProcess",
    "TritonEndpoints",
]
