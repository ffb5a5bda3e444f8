"""The Numba compile options of the CPU kernels, in one place.

Every kernel caches its machine code on disk (``cache=True``, keyed on the sources it reads,
see :mod:`simplernn_numba._cache`) and uses NumPy's error model (``error_model="numpy"``: a
division by zero gives inf or nan instead of raising, so loops vectorise without checks).
``fastmath={"contract"}`` lets LLVM fuse a multiply and an add into one FMA (one rounding);
``reassoc`` (the register-tiled products only) also lets it reorder sums into vector partial
sums. ``nogil`` kernels run on Numba's threads (:mod:`.launch`) or the caller's; ``inline``
functions are compiled into their callers (the caller's fastmath flags apply there).
"""

#: Entry kernels of the paths, called on Numba's threads or the caller's.
THREADED = dict(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
#: Kernels run on the calling thread only.
SERIAL = dict(cache=True, fastmath={"contract"}, error_model="numpy")
#: Functions compiled into their callers, with FMA contraction.
INLINE = dict(cache=True, inline="always", fastmath={"contract"}, error_model="numpy")
#: Functions compiled into their callers, exactly as written (the activations: their callers'
#: flags apply).
INLINE_EXACT = dict(cache=True, inline="always", error_model="numpy")
#: The register-tiled products: sums may be reassociated into vector partial sums.
PRODUCTS = dict(cache=True, fastmath={"reassoc", "contract"}, error_model="numpy")
#: The launchers that run a kernel over Numba's threads (``prange``).
PARALLEL = dict(parallel=True, cache=True, error_model="numpy")
#: ``jit_options`` of an inlined ``@overload``, with FMA contraction.
OVERLOAD_INLINE = {"cache": True, "error_model": "numpy", "fastmath": {"contract"}}
#: ``jit_options`` of an inlined ``@overload`` compiled exactly as written.
OVERLOAD_EXACT = {"cache": True, "error_model": "numpy"}
#: Kernels compiled exactly as written, callable without the GIL (the streaming step).
NOGIL_EXACT = dict(cache=True, nogil=True, error_model="numpy")
#: Small helpers compiled into their callers, with Python's error model and no fastmath flags.
INLINE_PLAIN = dict(cache=True, inline="always")
#: ``jit_options`` of an ``@overload`` that only needs caching.
OVERLOAD_CACHED = {"cache": True}
