"""Pruning strategies: one class per method, all sharing :class:`PruningStrategy`."""

from .base import PruningStrategy
from .gradient import GradientPruning
from .lottery import LotteryTicketPruning, LotteryTicketResult, round_counts
from .magnitude import MagnitudePruning
from .movement import MovementPruning, movement_scores
from .random import RandomPruning
from .snip import SNIPPruning, snip_scores
from .sparsegpt import SparseGPTPruning, sparsegpt_prune
from .structured import StructuredPruning
from .taylor import TaylorPruning, taylor_scores
from .wanda import WandaPruning, wanda_scores

__all__ = [
    "GradientPruning",
    "LotteryTicketPruning",
    "LotteryTicketResult",
    "MagnitudePruning",
    "MovementPruning",
    "PruningStrategy",
    "RandomPruning",
    "SNIPPruning",
    "SparseGPTPruning",
    "StructuredPruning",
    "TaylorPruning",
    "WandaPruning",
    "movement_scores",
    "round_counts",
    "snip_scores",
    "sparsegpt_prune",
    "taylor_scores",
    "wanda_scores",
]
