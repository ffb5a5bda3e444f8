"""The compile notice: once per new variant a process compiles, without the advice to run the
compile command while that command runs."""

import logging

import numpy as np
from numba.core import event

from simplernn_numba import __main__ as cli
from simplernn_numba.kernels.cpu import lanes, last_call, notice, rows, warmup
from simplernn_numba.kernels.cpu.plan import Plan


def _compile_event(dispatcher, args=("float32",)):
    return event.Event("numba:compile", event.EventStatus.START,
                       data={"dispatcher": dispatcher, "args": args})


def _notices(caplog):
    return [r.getMessage() for r in caplog.records if "is compiling kernels" in r.getMessage()]


def test_each_new_variant_is_announced_once(caplog):
    caplog.set_level(logging.WARNING, logger="simplernn_numba")
    listener = notice._Listener()
    lanes_plan, rows_plan = Plan("lanes", 1, 0, False), Plan("rows", 1, 0, False)
    calls = ((lanes_plan, "float32", lanes.forward), (lanes_plan, "float32", lanes.forward),
             (lanes_plan, "float64", lanes.forward), (rows_plan, "float32", rows.forward))
    for plan, dtype, kernel in calls:
        last_call.about_to_run(plan, dtype, "tanh")
        listener.on_start(_compile_event(kernel, (dtype,)))
    messages = _notices(caplog)
    assert len(messages) == 3, messages
    assert "float64 tanh, plan lanes" in messages[1] and "plan rows" in messages[2]
    assert all("python -m simplernn_numba compile" in m for m in messages)
    listener.on_start(_compile_event(np.zeros))  # not one of the package's kernels
    assert len(_notices(caplog)) == 3


def test_the_compile_command_does_not_advise_itself(caplog, monkeypatch, capsys):
    caplog.set_level(logging.WARNING, logger="simplernn_numba")
    listener = notice._Listener()

    def fake_run(dtypes, training, activation, plans):
        last_call.about_to_run(Plan("lanes", 1, 0, False), "float32", activation)
        listener.on_start(_compile_event(lanes.forward))
        return [("lanes float32", 0.1, ["forward"])]

    monkeypatch.setattr(warmup, "run", fake_run)
    cli.main(["compile", "--plan", "lanes"])
    (message,) = _notices(caplog)
    assert "python -m simplernn_numba compile" not in message
    assert "1 variants ready" in capsys.readouterr().out
