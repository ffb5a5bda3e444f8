"""Compile every CUDA kernel to PTX without a GPU: a typing and lowering check.

Needs a CUDA toolkit's NVVM (``libnvvm.so`` and ``libdevice.10.bc``), not a GPU or
driver. With ``--ptxas`` the PTX is also assembled and each kernel's registers, stack
frame, spills and static shared memory printed; with ``nvdisasm`` found too (the toolkit's,
or the ``nvidia-cuda-nvdisasm`` wheel's), the machine code (SASS) of each step loop of the
register-resident kernels is counted: all instructions between the loop's head and its
back branch (the once-a-chunk staging included), and FFMA/DFMA, shared loads, shuffles,
barriers and global loads and stores among them.

    python benchmarks/ptx_check.py --cuda-home /usr/local/cuda-13.0 --ptxas

The register-resident kernels are compiled for the shapes their plan rule gives with the
default settings (:mod:`simplernn_numba.kernels.cuda.plan`): U = 32, 64 and 128,
one row a block, tanh, and a few option sets.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sysconfig
import tempfile
import types

import numpy as np

#: SASS opcodes counted per step loop, by column name.
OPCODES = {"fma": ("FFMA", "DFMA"), "lds": ("LDS",), "shfl": ("SHFL",), "bar": ("BAR",),
           "ldg": ("LDG", "LD"), "stg": ("STG", "ST"), "sts": ("STS",)}


def find_nvdisasm(cuda_home: str) -> str | None:
    """The toolkit's nvdisasm, one on PATH, or the nvidia-cuda-nvdisasm wheel's."""
    candidates = [pathlib.Path(cuda_home, "bin", "nvdisasm"), shutil.which("nvdisasm")]
    site = pathlib.Path(sysconfig.get_paths()["purelib"], "nvidia")
    candidates += sorted(site.glob("cu*/bin/nvdisasm"))
    for path in candidates:
        if path and pathlib.Path(path).is_file():
            return str(path)
    return None


def step_loop(sass: str) -> dict | None:
    """Counts over the step loop of a disassembled kernel: the longest backward branch whose
    range holds a barrier (the inner loops are unrolled, so that is the loop over steps)."""
    lines = [(int(m.group(1), 16), m.group(2).strip()) for m in
             re.finditer(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", sass)]
    label = re.compile(r"\.(L_x_\d+):\s*\n\s*/\*([0-9a-f]+)\*/")
    labels = {m.group(1): int(m.group(2), 16) for m in label.finditer(sass)}
    best = None
    for address, text in lines:
        target = re.search(r"BRA[^`]*`\(\.(L_x_\d+)\)", text)
        if not target or labels.get(target.group(1), address + 1) > address:
            continue
        body = [t for a, t in lines if labels[target.group(1)] <= a <= address]
        if any(re.match(r"(@!?U?P\w+\s+)?BAR", t) for t in body) and (best is None or len(body) > len(best)):
            best = body
    if best is None:
        return None

    def opcode(text):
        return re.sub(r"^@!?U?P\w+\s+", "", text).split()[0].split(".")[0]

    counts = {"instructions": len(best)}
    for name, ops in OPCODES.items():
        counts[name] = sum(opcode(t) in ops for t in best)
    return counts


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
    label = [""]

    def compile_only(*jit_args, **jit_kw):
        if not jit_args or callable(jit_args[0]) or jit_kw.get("device"):
            return jit(*jit_args, **jit_kw)

        def decorate(fn):
            ptx, _ = cuda.compile_ptx(fn, jit_args[0], cc=cc, launch_bounds=jit_kw.get("launch_bounds"))
            path = out_dir / f"{len(compiled):02d}_{fn.__name__}{label[0]}.ptx"
            path.write_text(ptx)
            compiled.append(path)
            return fn

        return decorate

    cuda.jit = compile_only
    from simplernn_numba import activations
    from simplernn_numba.kernels import config
    from simplernn_numba.kernels.cuda import gemm, per_step, persistent, rows, sequence
    from simplernn_numba.kernels.cuda import plan as plans
    from simplernn_numba.kernels.cuda.registers import Shape, backward_kernel, forward_kernel
    from simplernn_numba.kernels.cuda.step import DOUT_SEQUENCE

    tanh = activations.TANH
    for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
        for module in (rows, persistent, per_step):
            module.forward_kernel(dtype)
            module.backward_kernel(dtype)
        per_step.forward_tiled_kernel(dtype, config.CUDA_TILE)
        per_step.backward_tiled_kernel(dtype, config.CUDA_TILE)
        sequence.previous_states_kernel(dtype)
        sequence.derivative_kernel(dtype)
        sequence.column_sum_kernel(dtype)
        label[0] = f"_{dtype.name}"
        gemm.gemm_kernel(dtype, config.CUDA_TILE, config.CUDA_MICRO)
        for units in (32, 64, 128):
            bucket, lanes = plans._columns(units)
            for make, streams, options in (
                    (forward_kernel, 1, [(tanh, False, False, True), (tanh, True, True, True)]),
                    (backward_kernel, 2, [(tanh, DOUT_SEQUENCE, False, False),
                                          (tanh, DOUT_SEQUENCE, True, True)])):
                for option in options if units == 64 else options[:1]:
                    stage = plans._stage_steps(bucket, lanes, 1, dtype.itemsize, streams)
                    label[0] = f"_{dtype.name}_U{units}_{bucket}x{lanes}_s{stage}" + (
                        "_mask_rdrop" if option[2] else "")
                    make(dtype, Shape(bucket, lanes, 1, stage), *option)
        label[0] = f"_{dtype.name}_U64_rows4"
        forward_kernel(dtype, Shape(64, 4, 4, plans._stage_steps(64, 4, 4, dtype.itemsize, 1)),
                       tanh, False, False, True)
        label[0] = ""
    nvdisasm = find_nvdisasm(args.cuda_home) if args.ptxas else None
    for path in compiled:
        line = f"{path.name}: {path.stat().st_size} bytes of PTX"
        if args.ptxas:
            ptxas = pathlib.Path(args.cuda_home, "bin", "ptxas")
            cubin = path.with_suffix(".cubin")
            # -c: the persistent kernels link cudadevrt (grid sync) at load time
            run = subprocess.run([str(ptxas), f"-arch=sm_{cc[0]}{cc[1]}", "-c", "-v", str(path), "-o",
                                  str(cubin)], capture_output=True, text=True, check=True)
            line += "; " + "; ".join(s.split(":", 1)[-1].strip() for s in run.stderr.splitlines()
                                     if "Used" in s or "stack frame" in s)
            if nvdisasm and "registers" in path.name:
                sass = subprocess.run([nvdisasm, "-c", str(cubin)], capture_output=True, text=True,
                                      check=True).stdout
                counts = step_loop(sass)
                line += f"; step loop SASS: {counts}"
        print(line)
    print(f"{len(compiled)} kernels compiled for sm_{cc[0]}{cc[1]}"
          + ("" if nvdisasm or not args.ptxas else "; no nvdisasm, no SASS counts"))


if __name__ == "__main__":
    main()
