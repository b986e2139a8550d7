"""Model lifecycle at the gateway: publish a version, split traffic, promote, roll back,
unload. See `service.py` for the operations and what each guarantees."""

from gateway.control.lifecycle.errors import LifecycleError, QualityGateFailed
from gateway.control.lifecycle.service import ModelLifecycle
from gateway.control.lifecycle.traffic import TrafficSplit, TrafficSplits

__all__ = ["LifecycleError", "ModelLifecycle", "QualityGateFailed", "TrafficSplit", "TrafficSplits"]
