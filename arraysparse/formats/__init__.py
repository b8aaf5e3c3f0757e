"""Sparse formats: compress dense arrays exactly, and exchange them with scipy, torch, cupyx."""

from .base import INDEX32_LIMIT, SparseCompressionResult, SparseFormat
from .codecs import compress

__all__ = ["INDEX32_LIMIT", "SparseCompressionResult", "SparseFormat", "compress"]
