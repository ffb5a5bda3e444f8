"""What this thread's last CPU call ran: its plan (:func:`last_plan`), dtype and activation."""

from __future__ import annotations

import threading

_call = threading.local()


def about_to_run(plan, dtype, activation) -> None:
    """Name the call that runs next on this thread: for :func:`last_plan`, and for the compile
    notice (:mod:`.notice`) should it compile."""
    _call.description = (plan, dtype, activation)


def last_plan():
    """The plan (:class:`.plan.Plan`) of this thread's last CPU call, forward or backward (None
    before one)."""
    description = getattr(_call, "description", None)
    return None if description is None else description[0]


def description() -> tuple:
    """(plan, dtype, activation) of the call running on this thread ((None, None, None) before one)."""
    return getattr(_call, "description", (None, None, None))
