"""Compile every CUDA kernel to PTX without a GPU: a typing and lowering check.

Needs a CUDA toolkit's NVVM (``libnvvm.so`` and ``libdevice.10.bc``), not a GPU or
driver. With ``--ptxas`` the PTX is also assembled and register use printed.

    python benchmarks/ptx_check.py --cuda-home /usr/local/cuda-13.0 --ptxas
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import tempfile
import types

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuda-home", default=os.environ.get("CUDA_HOME", "/usr/local/cuda"))
    parser.add_argument("--cc", default="9.0", help="compute capability, e.g. 9.0 (H100)")
    parser.add_argument("--ptxas", action="store_true", help="assemble the PTX with ptxas")
    args = parser.parse_args()
    os.environ["CUDA_HOME"] = args.cuda_home
    cc = tuple(int(v) for v in args.cc.split("."))

    from numba import cuda
    from numba.cuda import dispatcher
    from numba.cuda.cudadrv import libs, nvrtc, nvvm

    # Without a driver, answer the compute capability and libdevice questions ourselves.
    libdevice = str(pathlib.Path(args.cuda_home, "nvvm", "libdevice", "libdevice.10.bc"))
    libs.get_libdevice = nvvm.get_libdevice = lambda: libdevice
    nvrtc.get_arch_option = lambda major, minor, arch="": f"compute_{major}{minor}"
    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)

    jit = cuda.jit
    out_dir = pathlib.Path(tempfile.mkdtemp(prefix="simplernn_ptx_"))
    compiled = []

    def compile_only(*jit_args, **jit_kw):
        if not jit_args or callable(jit_args[0]) or jit_kw.get("device"):
            return jit(*jit_args, **jit_kw)

        def decorate(fn):
            ptx, _ = cuda.compile_ptx(fn, jit_args[0], cc=cc)
            path = out_dir / f"{fn.__name__}_{len(compiled)}.ptx"
            path.write_text(ptx)
            compiled.append(path)
            return fn

        return decorate

    cuda.jit = compile_only
    from simplernn_numba.kernels import config
    from simplernn_numba.kernels import cuda as kernels

    for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
        kernels.kernels_for(dtype)
        kernels.tiled_kernels_for(dtype, config.CUDA_TILE, config.CUDA_MICRO)
    for path in compiled:
        line = f"{path.name}: {path.stat().st_size} bytes of PTX"
        if args.ptxas:
            ptxas = pathlib.Path(args.cuda_home, "bin", "ptxas")
            # -c: the persistent kernels link cudadevrt (grid sync) at load time
            run = subprocess.run([str(ptxas), f"-arch=sm_{cc[0]}{cc[1]}", "-c", "-v", str(path), "-o",
                                  os.devnull], capture_output=True, text=True, check=True)
            line += "; " + " ".join(s.split(":", 1)[1].strip() for s in run.stderr.splitlines()
                                    if "Used" in s)
        print(line)
    print(f"{len(compiled)} kernels compiled for sm_{cc[0]}{cc[1]}")


if __name__ == "__main__":
    main()
