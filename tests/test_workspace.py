"""The per-thread work arrays of the CPU kernels (kernels/_workspace.py)."""

import threading

import numpy as np

from simplernn_numba.kernels import _workspace, cpu


def test_arrays_are_disjoint_aligned_and_reused():
    _workspace.release()
    a, b, c = _workspace.arrays(np.float32, (3, 5), (7,), (2, 2, 2))
    assert [x.shape for x in (a, b, c)] == [(3, 5), (7,), (2, 2, 2)]
    assert all(x.dtype == np.float32 and x.flags.c_contiguous and x.ctypes.data % 64 == 0
               for x in (a, b, c))
    assert not any(np.shares_memory(p, q) for p, q in ((a, b), (a, c), (b, c)))
    held = _workspace.held_bytes()
    d, = _workspace.arrays(np.float64, (4, 4))  # fits: the same buffer again
    assert _workspace.held_bytes() == held and d.ctypes.data == a.ctypes.data
    e, = _workspace.arrays(np.float64, (1000,))  # does not fit: a larger buffer
    assert _workspace.held_bytes() >= 8000 > held
    _workspace.release()
    assert _workspace.held_bytes() == 0
    e[:] = 1.0  # an array handed out before release() keeps its memory


def test_each_thread_has_its_own_buffer_and_finished_threads_free_theirs():
    _workspace.release()
    mine, = _workspace.arrays(np.float32, (10,))
    seen = []
    worker = threading.Thread(target=lambda: seen.append(_workspace.arrays(np.float32, (10,))[0]))
    worker.start()
    worker.join()
    assert not np.shares_memory(mine, seen[0])
    two_threads = _workspace.held_bytes()
    _workspace.arrays(np.float32, (100_000,))  # this thread's buffer grows: the dead one goes
    assert _workspace.held_bytes() < two_threads + 400_000


def test_results_do_not_share_the_work_arrays():
    def problem(seed):
        r = np.random.default_rng(seed)
        x = r.standard_normal((6, 9, 5))
        weights = r.standard_normal((5, 4)), r.standard_normal((4, 4)) * 0.3, r.standard_normal(4)
        outputs, _ = cpu.forward(x, *weights, np.zeros((6, 4)), go_backwards=True)
        return x, weights, outputs, r.standard_normal(outputs.shape)

    first = problem(1)
    grads = cpu.backward(first[0], *first[1], np.zeros((6, 4)), first[2], first[3], go_backwards=True)
    kept = {key: value.copy() for key, value in grads.items()}
    second = problem(2)
    cpu.backward(second[0], *second[1], np.zeros((6, 4)), second[2], second[3], go_backwards=True)
    for key, value in grads.items():
        assert np.array_equal(value, kept[key]), key


def test_release_workspace_frees_what_a_backward_pass_kept(rng):
    x = rng.standard_normal((3, 4, 5))
    weights = rng.standard_normal((5, 6)), rng.standard_normal((6, 6)) * 0.3, None
    outputs, _ = cpu.forward(x, *weights, np.zeros((3, 6)))
    cpu.backward(x, *weights, np.zeros((3, 6)), outputs, np.ones_like(outputs))
    assert _workspace.held_bytes() >= 8 * (5 + 4 * 6) * 3 * 4  # about (F + 4U) * B * T floats
    cpu.release_workspace()
    assert _workspace.held_bytes() == 0
