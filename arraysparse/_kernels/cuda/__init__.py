"""CUDA kernels for CuPy arrays and CUDA torch tensors.

The kernels are CUDA C++ sources shipped as package data (``*.cu``, sharing
``common.cuh``), templated on value / key / index type and ``m`` and
instantiated by name (:mod:`.instances` lists every instance). Launch plans
(:mod:`.plans`) are written once against a device: the CuPy loader
(:mod:`.loader`, NVRTC through ``cupy.RawModule``) on a GPU, the host
emulation (:mod:`.emulate`) in the test suite. Nothing here imports CuPy until
a plan runs on a GPU; :mod:`arraysparse._backends.cuda` alone imports this package.
"""
