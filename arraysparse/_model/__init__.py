"""The pieces of :mod:`arraysparse.model`, one job each, imported by it (and by the strategies).

``tree`` (nested mappings <-> flat dotted names), ``rules`` (exclude /
overrides name patterns), ``report`` (LayerReport, ModelReport, ModelMask) and
``scope_global`` (one threshold over all layers) sit below the strategies,
which use them; ``scope_layer`` (each layer by a strategy) and ``prune``
(prune_model) sit above them; ``compress`` (compress_model,
decompress_model) uses the formats, ``tree`` and ``rules``. Imports only go
down that order, all at module level: no import cycle to break.
"""
