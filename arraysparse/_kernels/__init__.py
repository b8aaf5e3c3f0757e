"""Compiled kernels by device: :mod:`.cpu` (Numba) and :mod:`.cuda` (CUDA C++ through CuPy).

:mod:`arraysparse._backends` alone imports them.
"""
