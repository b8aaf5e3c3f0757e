"""Whole-model pruning: global thresholds, layer-wise pruning and their report.

arraysparse runs no model. A *model* here is a mapping of names to arrays,
nested mappings allowed (a ``state_dict``, a JAX parameter tree of dicts, a
dict of NumPy arrays); flat names join the levels with ``"."``.

* :func:`global_mask` ranks every value of the model together and prunes the
  lowest ``round(sparsity * total)``: exactly the mask of concatenating the
  arrays in mapping order and taking top-k (ties: the lower index of that
  concatenation is pruned first), computed without concatenating anything.
* :func:`layer_masks` prunes every layer to its own target with any
  :class:`~arraysparse.PruningStrategy` and pattern.
* :func:`prune_model` does either and applies the masks.
* :func:`prune_checkpoint` does either on a checkpoint larger than memory,
  tensor by tensor from disk to disk, with the masks ``prune_model`` gives.
* :func:`compress_model` puts every array (or those a name rule picks) into
  a sparse format, :func:`decompress_model` takes them back;
  :func:`arraysparse.save` stores the result.

All three answer with a :class:`ModelMask`: a read-only mapping of flat names
to :class:`~arraysparse.PruningMask`, with a per-layer :attr:`ModelMask.report`.

The code lives in :mod:`arraysparse._model`, a module per job (tree, name
rules, report, each scope); this module gathers its public names.
"""

from __future__ import annotations

from ._model.compress import compress_model, decompress_model
from ._model.prune import prune_model
from ._model.report import LayerReport, ModelMask, ModelReport
from ._model.scope_global import global_mask
from ._model.scope_layer import layer_masks
from ._model.stream import prune_checkpoint
from ._model.tree import flatten_model, unflatten_model

__all__ = [
    "LayerReport",
    "ModelMask",
    "ModelReport",
    "compress_model",
    "decompress_model",
    "flatten_model",
    "global_mask",
    "layer_masks",
    "prune_checkpoint",
    "prune_model",
    "unflatten_model",
]
