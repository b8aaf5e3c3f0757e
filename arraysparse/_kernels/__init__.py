"""Compiled kernels by device (:mod:`.cpu`: Numba); :mod:`arraysparse._backends` alone imports them."""
