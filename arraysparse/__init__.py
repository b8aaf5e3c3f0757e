"""Pruning, sparsity patterns and sparse compression for any array-API array.

The same algorithms run on NumPy, PyTorch, CuPy, JAX and any array the Python
array API standard describes; results come back in the caller's library, dtype
family and device. NumPy and CPU torch run Numba kernels, compiled on first use
and cached on disk (``import arraysparse`` compiles nothing).

Main entry points
-----------------
Scores
    ``magnitude_scores``, ``gradient_scores``, ``structure_scores``,
    ``block_scores``, ``random_scores``.
Masks
    ``topk_mask`` (unstructured), ``nm_mask`` (2:4, any N:M), ``structured_mask``,
    ``block_mask``, ``random_mask``, ``create_mask`` (any ``SparsityPattern``)
    return a ``PruningMask``: ``.apply(w)``, ``.apply_(w)``, ``&``, ``|``, ``~``,
    ``.satisfies()``, exact counts, one tie rule on every backend.
Strategies
    ``MagnitudePruning``, ``GradientPruning``, ``StructuredPruning``,
    ``RandomPruning``, ``TaylorPruning``, ``SNIPPruning``, ``MovementPruning``,
    ``LotteryTicketPruning``, ``WandaPruning``, ``SparseGPTPruning``: one
    ``PruningStrategy`` interface, ``strategy.prune(w, sparsity)``.
Whole models
    ``global_mask``, ``layer_masks``, ``prune_model`` on a mapping of names to
    arrays (a ``state_dict``), answering with a ``ModelMask`` and its report;
    schedules ``CubicSchedule``, ``LinearSchedule``, ``ExponentialSchedule``.
Compression
    ``compress(x, "csr" | "bsr" | "2:4" | ...)`` returns a
    ``SparseCompressionResult`` (``.to_dense()``, ``.to_scipy()``,
    ``.to_torch()``, ``.to_cutlass()``); ``from_scipy``, ``from_torch``,
    ``from_cupyx``, ``from_sparse`` bring sparse arrays back; ``compress_model``
    compresses a whole model.
Files and checkpoints
    ``save`` / ``load`` (safetensors or ``.npz``) for results, compressed models
    and masks; ``prune_checkpoint`` prunes a checkpoint larger than memory tensor
    by tensor; ``arraysparse.io.open_checkpoint`` reads one lazily. The
    ``arraysparse`` command (``prune``, ``compress``, ``inspect``, ``plot``,
    ``demo``) runs these on files.
Backends
    CuPy arrays and CUDA torch tensors run CUDA kernels (with CuPy installed);
    Dask arrays run lazily, chunk by chunk (``to_zarr`` / ``from_zarr`` for
    compressed bands).

Documentation
-------------
``docs/index.md`` in the repository is the start of the documentation site
(``mkdocs serve`` in a checkout with the ``docs`` extra); the guides are
``docs/guide.md``, ``docs/formats.md``, ``docs/model-pruning.md`` and
``docs/*-strategies.md``, ``docs/cli.md``, ``docs/persistence.md``,
``docs/cuda.md``, ``docs/scaling-out.md``, and ``docs/api/`` is the reference generated from
these docstrings. ``help()`` on any public name gives its docstring, with a
runnable example.

Try it
------
``arraysparse demo`` (with the ``cli`` extra) prunes a small trained network
shipped with the package fifteen ways and prints its accuracy and sizes;
``python examples/quickstart.py`` (in a checkout) prunes one matrix six ways and
compresses each result. ``arraysparse.precompile()`` compiles the common
kernels ahead of time, e.g. in a container build:
``python -c "import arraysparse; arraysparse.precompile()"``.

Examples
--------
>>> import numpy as np
>>> import arraysparse as asp
>>> w = np.array([[0.1, -2.0, 0.3, 4.0], [1.0, 0.2, -0.5, 3.0]])
>>> mask = asp.nm_mask(w, 2, 4, magnitude=True)
>>> mask.apply(w)
array([[ 0., -2.,  0.,  4.],
       [ 1.,  0.,  0.,  3.]])
>>> asp.compress(mask.apply(w), "2:4").values
array([[-2.,  4.],
       [ 1.,  3.]])
"""

from ._precompile import precompile
from .calibration import HessianAccumulator, InputNormAccumulator
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
from .formats.store import from_zarr, to_zarr
from .io import load, save
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
from .model import (
    LayerReport,
    ModelMask,
    ModelReport,
    compress_model,
    decompress_model,
    flatten_model,
    global_mask,
    layer_masks,
    prune_checkpoint,
    prune_model,
    unflatten_model,
)
from .patterns import PatternKind, SparsityPattern
from .schedules import (
    CubicSchedule,
    ExponentialSchedule,
    LinearSchedule,
    PruningSchedule,
    to_absolute,
    to_relative,
)
from .scores import (
    block_scores,
    gradient_scores,
    magnitude_scores,
    random_scores,
    structure_scores,
)
from .strategies import (
    GradientPruning,
    LotteryTicketPruning,
    LotteryTicketResult,
    MagnitudePruning,
    MovementPruning,
    PruningStrategy,
    RandomPruning,
    SNIPPruning,
    SparseGPTPruning,
    StructuredPruning,
    TaylorPruning,
    WandaPruning,
    movement_scores,
    round_counts,
    snip_scores,
    sparsegpt_prune,
    taylor_scores,
    wanda_scores,
)

__version__ = "0.1.0"

__all__ = [
    "CubicSchedule",
    "ExponentialSchedule",
    "GradientPruning",
    "HessianAccumulator",
    "InputNormAccumulator",
    "LayerReport",
    "LinearSchedule",
    "LotteryTicketPruning",
    "LotteryTicketResult",
    "MagnitudePruning",
    "ModelMask",
    "ModelReport",
    "MovementPruning",
    "PatternKind",
    "PruningMask",
    "PruningSchedule",
    "PruningStrategy",
    "RandomPruning",
    "SNIPPruning",
    "SparseCompressionResult",
    "SparseFormat",
    "SparseGPTPruning",
    "SparsityPattern",
    "StructuredPruning",
    "TaylorPruning",
    "WandaPruning",
    "apply_mask",
    "block_mask",
    "block_scores",
    "compress",
    "compress_model",
    "create_mask",
    "cutlass_meta_from_positions",
    "decompress_model",
    "flatten_model",
    "from_cupyx",
    "from_cutlass",
    "from_scipy",
    "from_sparse",
    "from_torch",
    "from_zarr",
    "global_mask",
    "gradient_scores",
    "layer_masks",
    "load",
    "magnitude_scores",
    "movement_scores",
    "nm_mask",
    "positions_from_cutlass_meta",
    "precompile",
    "prune_checkpoint",
    "prune_model",
    "random_mask",
    "random_scores",
    "round_counts",
    "save",
    "snip_scores",
    "sparsegpt_prune",
    "structure_scores",
    "structured_mask",
    "taylor_scores",
    "to_absolute",
    "to_cupyx",
    "to_cutlass",
    "to_relative",
    "to_scipy",
    "to_torch",
    "to_zarr",
    "topk_mask",
    "unflatten_model",
    "wanda_scores",
]
