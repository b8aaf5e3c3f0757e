"""Numba kernels for NumPy and CPU torch arrays.

Plain loop code, grouped by job. Nothing here is imported, let alone compiled,
until a public function first needs it: ``import arraysparse`` stays cheap.
"""
