"""Pruning strategies: one class per method, all sharing :class:`PruningStrategy`."""

from .base import PruningStrategy
from .gradient import GradientPruning
from .lottery import LotteryTicketPruning, LotteryTicketResult, round_counts
from .magnitude import MagnitudePruning
from .movement import MovementPruning, movement_scores
from .random import RandomPruning
from .snip import SNIPPruning, snip_scores
from .structured import StructuredPruning
from .taylor import TaylorPruning, taylor_scores

__all__ = [
    "GradientPruning",
    "LotteryTicketPruning",
    "LotteryTicketResult",
    "MagnitudePruning",
    "MovementPruning",
    "PruningStrategy",
    "RandomPruning",
    "SNIPPruning",
    "StructuredPruning",
    "TaylorPruning",
    "movement_scores",
    "round_counts",
    "snip_scores",
    "taylor_scores",
]
