"""The plan of this thread's last CUDA call (:func:`last_plan`)."""

from __future__ import annotations

import threading

_call = threading.local()


def record(plan) -> None:
    """Remember ``plan`` (a :class:`.plan.Plan`) as the plan of the call running on this thread."""
    _call.plan = plan


def last_plan():
    """The :class:`.plan.Plan` of this thread's last CUDA call, forward or backward (None before one)."""
    return getattr(_call, "plan", None)
