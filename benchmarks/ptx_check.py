"""Compile every CUDA kernel to PTX for sm_90 without a GPU (typing + lowering check)."""
import sys, numpy as np
from numba import cuda
from numba.cuda.cudadrv import nvrtc, libs, nvvm as _nv
libs.get_libdevice = lambda: "/usr/local/cuda-13.0/nvvm/libdevice/libdevice.10.bc"
_nv.get_libdevice = libs.get_libdevice
nvrtc.get_arch_option = lambda major, minor, arch="": f"compute_{major}{minor}"
import types as _t, numba.cuda.dispatcher as _d
_d.get_current_device = lambda: _t.SimpleNamespace(compute_capability=(9, 0))
real_jit = cuda.jit
compiled = []
def fake_jit(*args, **kw):
    if args and not callable(args[0]) and not kw.get("device"):
        sig = args[0]
        def deco(fn):
            ptx, _ = cuda.compile_ptx(fn, sig, cc=(9, 0))
            compiled.append((fn.__name__, len(ptx))); open(f"/tmp/ptx/{fn.__name__}_{len(compiled)}.ptx","w").write(ptx)
            return fn
        return deco
    return real_jit(*args, **kw)
from simplernn_numba.kernels import cuda as K
K.cuda.jit = fake_jit
for dt in (np.float32, np.float64):
    K._kernels(np.dtype(dt)); K._gemm_kernel(np.dtype(dt), 16)
print(compiled)
