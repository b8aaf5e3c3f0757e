"""Persistence: checkpoints on disk, and saving / loading compressed arrays and models.

Two layers, each in its own module:

* :mod:`arraysparse.io.checkpoint`: named arrays in ``.safetensors`` and
  ``.npz`` files, the formats every tool reads. :func:`open_checkpoint`
  gives a lazy read-only mapping (a file, or a directory of shards);
  :func:`write_checkpoint` and :class:`CheckpointWriter` write atomically,
  one array at a time, to one file or (``max_shard_size``) to a directory of
  shards and its Hugging Face index.
* :mod:`arraysparse.io.results`: :func:`save` and :func:`load` for a
  :class:`~arraysparse.SparseCompressionResult`, a whole compressed model
  (a nested mapping of results and dense arrays) or a
  :class:`~arraysparse.model.ModelMask`, on top of the checkpoint layer,
  with the layout described in the metadata (``docs/persistence.md``);
  :class:`ModelWriter` writes a model one entry at a time.

The private modules hold the file formats: ``_safetensors`` (strict header
checks, mapped reads, the writers), ``_npz``, ``_atomic`` (unnamed temporary
file, fsync, link and rename), ``_shards`` (shard directories committed as a
whole) and ``_dtypes`` (dtype names and tags, arrays to bytes and back).
"""

from .checkpoint import Checkpoint, CheckpointWriter, TensorInfo, open_checkpoint, write_checkpoint
from .results import ModelWriter, load, save

__all__ = [
    "Checkpoint",
    "CheckpointWriter",
    "ModelWriter",
    "TensorInfo",
    "load",
    "open_checkpoint",
    "save",
    "write_checkpoint",
]
