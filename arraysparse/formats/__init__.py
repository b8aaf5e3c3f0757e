"""Sparse formats: compress dense arrays exactly, and exchange them with scipy, torch, cupyx.

``compress(x, format)`` returns a :class:`SparseCompressionResult`;
``result.to_dense()`` gives ``x`` back. The formats and their arrays are
listed on :class:`SparseFormat`; shared rules (2-D view, what counts as
zero, index dtypes) in :mod:`arraysparse.formats.base`.
"""

from .base import INDEX32_LIMIT, SparseCompressionResult, SparseFormat
from .codecs import compress
from .cutlass import cutlass_meta_from_positions, from_cutlass, positions_from_cutlass_meta, to_cutlass
from .interop import from_cupyx, from_scipy, from_sparse, from_torch, to_cupyx, to_scipy, to_torch

__all__ = [
    "INDEX32_LIMIT",
    "SparseCompressionResult",
    "SparseFormat",
    "compress",
    "cutlass_meta_from_positions",
    "from_cutlass",
    "from_cupyx",
    "from_scipy",
    "from_sparse",
    "from_torch",
    "positions_from_cutlass_meta",
    "to_cupyx",
    "to_cutlass",
    "to_scipy",
    "to_torch",
]
