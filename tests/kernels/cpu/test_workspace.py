"""The per-thread work arrays of the CPU kernels (kernels/cpu/workspace.py)."""

import threading

import numpy as np

from simplernn_numba.kernels import cpu
from simplernn_numba.kernels.cpu import workspace as _workspace


def test_arrays_are_disjoint_aligned_and_reused():
    _workspace.release()
    a, b, c = _workspace.arrays(np.float32, (300, 500), (7,), (2, 2, 2))
    assert [x.shape for x in (a, b, c)] == [(300, 500), (7,), (2, 2, 2)]
    assert all(x.dtype == np.float32 and x.flags.c_contiguous and x.ctypes.data % 64 == 0
               for x in (a, b, c))
    assert not any(np.shares_memory(p, q) for p, q in ((a, b), (a, c), (b, c)))
    held = _workspace.held_bytes()
    d, = _workspace.arrays(np.float64, (200, 200))  # fits: the same buffer again
    assert _workspace.held_bytes() == held and d.ctypes.data == a.ctypes.data
    e, = _workspace.arrays(np.float64, (100_000,))  # does not fit: a larger buffer
    assert _workspace.held_bytes() >= 800_000 > held
    _workspace.release()
    assert _workspace.held_bytes() == 0
    e[:] = 1.0  # an array handed out before release() keeps its memory


def test_aligned_empty_starts_on_a_cache_line():
    for shape, dtype in (((1000, 300), np.float32), ((7,), np.float64), ((1, 3), np.float32)):
        a = _workspace.aligned_empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert a.ctypes.data % 64 == 0


def test_gradient_product_operands_are_aligned_copies():
    from simplernn_numba.kernels.cpu.gradient_products import _padded
    a = np.arange(12.0).reshape(3, 4)
    assert _padded(a) is a  # already C-contiguous and whole: no copy
    for copy in (_padded(a, rows=4), _padded(a.T), _padded(a, columns=8)):
        assert copy.ctypes.data % 64 == 0 and copy.flags.c_contiguous
    np.testing.assert_array_equal(_padded(a, rows=4, columns=8)[:3, :4], a)
    assert not _padded(a, rows=4, columns=8)[3:].any() and not _padded(a, columns=8)[:, 4:].any()
    np.testing.assert_array_equal(_padded(a.T), a.T)


def test_small_requests_get_fresh_arrays():
    _workspace.release()
    a, b = _workspace.arrays(np.float64, (3, 5), (7,))
    assert (a.shape, b.shape, a.dtype) == ((3, 5), (7,), np.float64) and a.flags.owndata
    assert _workspace.held_bytes() == 0


def test_each_thread_has_its_own_buffer_and_finished_threads_free_theirs():
    _workspace.release()
    mine, = _workspace.arrays(np.float32, (100_000,))
    seen = []
    worker = threading.Thread(
        target=lambda: seen.append(_workspace.arrays(np.float32, (100_000,))[0]))
    worker.start()
    worker.join()
    assert not np.shares_memory(mine, seen[0])
    two_threads = _workspace.held_bytes()
    _workspace.arrays(np.float32, (150_000,))  # this thread's buffer grows: the dead one goes
    assert _workspace.held_bytes() < two_threads


def test_results_do_not_share_the_work_arrays():
    def problem(seed):
        r = np.random.default_rng(seed)
        x = r.standard_normal((6, 90, 50))
        weights = r.standard_normal((50, 40)), r.standard_normal((40, 40)) * 0.1, r.standard_normal(40)
        outputs, _ = cpu.forward(x, *weights, np.zeros((6, 40)), go_backwards=True)
        return x, weights, outputs, r.standard_normal(outputs.shape)

    _workspace.release()
    first = problem(1)
    grads = cpu.backward(first[0], *first[1], np.zeros((6, 40)), first[2], first[3], go_backwards=True)
    assert _workspace.held_bytes() > 0  # the work arrays came from the buffer
    kept = {key: value.copy() for key, value in grads.items()}
    second = problem(2)
    cpu.backward(second[0], *second[1], np.zeros((6, 40)), second[2], second[3], go_backwards=True)
    for key, value in grads.items():
        assert np.array_equal(value, kept[key]), key


def test_release_workspace_frees_what_a_backward_pass_kept(rng):
    x = rng.standard_normal((8, 64, 16))
    weights = rng.standard_normal((16, 32)), rng.standard_normal((32, 32)) * 0.1, None
    outputs, _ = cpu.forward(x, *weights, np.zeros((8, 32)))
    _workspace.release()
    cpu.backward(x, *weights, np.zeros((8, 32)), outputs, np.ones_like(outputs))
    assert _workspace.held_bytes() >= 8 * 2 * 32 * 8 * 64  # 2U * B * T float64s
    cpu.release_workspace()
    assert _workspace.held_bytes() == 0
