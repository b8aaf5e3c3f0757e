"""Pruning strategies: one class per method, all sharing :class:`PruningStrategy`."""

from .base import PruningStrategy
from .gradient import GradientPruning
from .magnitude import MagnitudePruning
from .random import RandomPruning
from .structured import StructuredPruning

__all__ = [
    "GradientPruning",
    "MagnitudePruning",
    "PruningStrategy",
    "RandomPruning",
    "StructuredPruning",
]
