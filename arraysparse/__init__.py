"""arraysparse: pruning masks and sparsity patterns for any array-API array.

The same algorithms run on NumPy, PyTorch, CuPy, JAX and any array the
Python array API standard describes; hot paths are Numba kernels on the CPU,
compiled on first use (nothing is compiled at import).
"""

from .formats import (
    SparseCompressionResult,
    SparseFormat,
    compress,
    cutlass_meta_from_positions,
    from_cupyx,
    from_cutlass,
    from_scipy,
    from_sparse,
    from_torch,
    positions_from_cutlass_meta,
    to_cupyx,
    to_cutlass,
    to_scipy,
    to_torch,
)
from .masks import (
    PruningMask,
    apply_mask,
    block_mask,
    create_mask,
    nm_mask,
    random_mask,
    structured_mask,
    topk_mask,
)
from .patterns import PatternKind, SparsityPattern
from .scores import (
    block_scores,
    gradient_scores,
    magnitude_scores,
    random_scores,
    structure_scores,
)
from .strategies import (
    GradientPruning,
    MagnitudePruning,
    PruningStrategy,
    RandomPruning,
    StructuredPruning,
)

__version__ = "0.1.0"

__all__ = [
    "GradientPruning",
    "MagnitudePruning",
    "PatternKind",
    "PruningMask",
    "PruningStrategy",
    "RandomPruning",
    "SparseCompressionResult",
    "SparseFormat",
    "SparsityPattern",
    "StructuredPruning",
    "apply_mask",
    "block_mask",
    "block_scores",
    "compress",
    "create_mask",
    "cutlass_meta_from_positions",
    "from_cupyx",
    "from_cutlass",
    "from_scipy",
    "from_sparse",
    "from_torch",
    "gradient_scores",
    "magnitude_scores",
    "nm_mask",
    "positions_from_cutlass_meta",
    "random_mask",
    "random_scores",
    "structure_scores",
    "structured_mask",
    "to_cupyx",
    "to_cutlass",
    "to_scipy",
    "to_torch",
    "topk_mask",
]
