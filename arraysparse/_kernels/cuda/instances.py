"""The CUDA sources and every template instance a launch plan may ask for: the one list.

The CuPy loader compiles an instance only if it is listed here, the test suite
compiles every listed instance with NVRTC for sm_80 and sm_90, and the host
emulation builds them all; so a kernel a plan launches is always one the suite
compiled. Names are the C++ expressions CuPy's ``name_expressions`` take.

A source is compiled as its *text*: the ``.cu`` file with ``common.cuh``
inlined (:func:`source_text`), so CuPy's cache, which keys on the code string,
sees an edit of the shared header too.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

DIRECTORY = Path(__file__).resolve().parent
COMMON = "common.cuh"

#: The unsigned C type of each item width (values and keys travel as their bits).
UNSIGNED = {1: "unsigned char", 2: "unsigned short", 4: "unsigned int", 8: "unsigned long long"}
#: The index types of the formats' outputs.
INDEX = {"int32": "int", "int64": "long long"}

#: The value dtypes the norm kernels read, by template argument.
NORM_DTYPES = {
    name: code
    for code, name in enumerate(
        ["float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
         "uint8", "uint16", "uint32", "uint64"]
    )
}

#: The CUTLASS layouts (arraysparse/_kernels/cpu/cutlass.py's kinds) by template argument.
CUTLASS_KINDS = {"half": 0, "byte": 1, "pair": 2}

#: ``MAXM`` of the register N:M kernel: the smallest one at least ``m`` is launched.
NM_SMALL_MAXM = (4, 8, 16, 32)


def name(kernel: str, *args: object) -> str:
    """The name expression of ``kernel``'s instance for the template ``args``."""
    return f"asp::{kernel}<{', '.join(map(str, args))}>"


def unsigned(dtype: np.dtype | int) -> str:
    """The unsigned C type as wide as ``dtype`` (or a width in bytes)."""
    width = dtype if isinstance(dtype, int) else np.dtype(dtype).itemsize
    return UNSIGNED[width]


def _per_width(*kernels: str) -> list[str]:
    return [name(k, u) for k in kernels for u in UNSIGNED.values()]


def _per_width_index(*kernels: str) -> list[str]:
    return [name(k, u, i) for k in kernels for u in UNSIGNED.values() for i in INDEX.values()]


def _instances() -> dict[str, list[str]]:
    return {
        "select.cu": _per_width("nan_count", "radix_histogram", "count_equal", "keep_threshold", "count_below")
        + ["asp::radix_pick"],
        "nm.cu": [name("nm_keep_small", u, mm) for u in UNSIGNED.values() for mm in NM_SMALL_MAXM]
        + _per_width("nm_keep_large"),
        "sparse.cu": _per_width("chunk_count", "csc_count", "block_flags", "bitmask_pack", "bitmask_scatter")
        + _per_width_index("compact", "csc_fill", "bsr_gather")
        + _per_width_index("csr_scatter", "csc_scatter", "coo_scatter", "bsr_scatter")
        + ["asp::bitmask_count"],
        "nmpack.cu": _per_width("nm_pack", "nm_unpack"),
        "norms.cu": [name(k, d) for k in ("slice_norms", "block_norms") for d in NORM_DTYPES.values()],
        "cutlass.cu": [
            name(k, kind)
            for k in ("cutlass_encode", "cutlass_decode", "cutlass_pack_codes", "cutlass_unpack_codes")
            for kind in CUTLASS_KINDS.values()
        ],
    }


#: source file -> its instances
INSTANCES: dict[str, list[str]] = _instances()


@functools.cache
def source_text(source: str) -> str:
    """The code of ``source`` as every compiler here sees it: ``common.cuh`` inlined."""
    text = (DIRECTORY / source).read_text()
    common = (DIRECTORY / COMMON).read_text()
    include = f'#include "{COMMON}"'
    if include not in text:
        msg = f"{source} does not include {COMMON}"
        raise ValueError(msg)
    return text.replace(include, f"// ---- {COMMON} ----\n{common}\n// ---- end of {COMMON} ----", 1)


def source_hash(source: str) -> str:
    """A short hash of ``source``'s text and instance list (compile caches key on it)."""
    h = hashlib.sha256(source_text(source).encode())
    h.update("\n".join(INSTANCES[source]).encode())
    return h.hexdigest()[:16]


def check_instance(source: str, instance: str) -> None:
    """Refuse an instance the registry does not list (it would escape the suite's compile)."""
    if instance not in INSTANCES.get(source, ()):
        msg = f"kernel instance {instance!r} of {source!r} is not listed in arraysparse._kernels.cuda.instances"
        raise KeyError(msg)
