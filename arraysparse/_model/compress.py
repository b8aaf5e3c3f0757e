"""compress_model / decompress_model: a whole model to a sparse format and back, tensor by tensor."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

from array_api_compat import is_array_api_obj

from ..formats.base import SparseCompressionResult, SparseFormat
from ..formats.codecs import _PARAMS, compress
from .rules import Patterns, _matches, _pattern_list, describe
from .tree import flatten_model, unflatten_model

Array = Any
_ON_ERROR = ("raise", "dense", "warn")
_ALL_PARAMS = ("block", "n", "m", "width")


def _is_array(value: Any) -> bool:
    return not isinstance(value, (bool, int, float, complex)) and is_array_api_obj(value)


def compress_model(
    model: Mapping[str, Any],
    format: SparseFormat | str,
    /,
    *,
    include: Patterns = None,
    exclude: Patterns = None,
    where: Callable[[str, Array], bool] | None = None,
    on_error: str = "raise",
    **params: Any,
) -> dict[str, Any]:
    """Compress every array of a model into ``format``; the same tree comes back.

    Parameters
    ----------
    model : mapping
        Nested or flat mapping of names to arrays (a ``state_dict``, a JAX
        parameter tree of dicts, ...). Only read.
    format : SparseFormat or str
        As :func:`arraysparse.compress`: ``"csr"``, ``"bsr"``, ``"2:4"``, ...
    include, exclude : glob, compiled re.Pattern, or a list of them, optional
        Which arrays to compress, by flat dotted name (``"*.weight"``,
        ``re.compile(r"attn")``): those ``include`` matches (all when
        omitted) that ``exclude`` does not. A pattern that matches no array
        is an error (it is almost always a typo).
    where : callable, optional
        ``where(name, array) -> bool``: a further filter, e.g.
        ``lambda name, a: a.ndim >= 2`` to keep biases and norms dense.
    on_error : {"raise", "dense", "warn"}
        What to do with a selected array the format cannot take (2:4 on an
        axis not divisible by 4, a 0-d array, a pattern violation, ...):
        ``"raise"`` a ``ValueError`` / ``TypeError`` naming the tensor;
        leave it ``"dense"``; or leave it dense and ``"warn"``, naming it
        and the reason.
    **params
        The format's parameters, as :func:`arraysparse.compress` takes them
        (``block=(4, 4)``, ``n=2, m=4``, ``width=...``).

    Returns
    -------
    dict
        Nested as ``model`` (plain dicts), compressed arrays replaced by
        :class:`~arraysparse.SparseCompressionResult`; every other value
        (arrays not selected, results already compressed, non-arrays) is
        passed through as it is. :func:`arraysparse.save` stores it whole.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> model = {"fc": {"weight": np.array([[0.0, 1.0, 0.0, 2.0]]), "bias": np.ones(1)}}
    >>> packed = asp.compress_model(model, "2:4", where=lambda name, a: a.ndim >= 2)
    >>> packed["fc"]["weight"].format, packed["fc"]["bias"]
    (<SparseFormat.STRUCTURED_2_TO_4: '2:4'>, array([1.]))
    >>> np.array_equal(asp.decompress_model(packed)["fc"]["weight"], model["fc"]["weight"])
    True
    """
    flat = flatten_model(model)
    fmt = SparseFormat.parse(format)
    if on_error not in _ON_ERROR:
        msg = f"on_error={on_error!r} must be one of {', '.join(map(repr, _ON_ERROR))}"
        raise ValueError(msg)
    if where is not None and not callable(where):
        msg = f"where must be a callable (name, array) -> bool, got {type(where).__name__}"
        raise TypeError(msg)
    _check_params(fmt, params)
    chosen = _select(flat, include, exclude)
    out: dict[str, Any] = {}
    for name, value in flat.items():
        if name not in chosen or (where is not None and not where(name, value)):
            out[name] = value
            continue
        try:
            out[name] = compress(value, fmt, **params)
        except (TypeError, ValueError) as e:
            out[name] = _failed(name, value, e, on_error)
    return unflatten_model(out, like=model)


def _check_params(fmt: SparseFormat, params: dict[str, Any]) -> None:
    """Refuse parameters that would fail on every tensor, whatever ``on_error`` says."""
    allowed = _PARAMS.get(fmt, ())
    for key, value in params.items():
        if key not in _ALL_PARAMS:
            msg = f"{key}={value!r} is not a format parameter; compress() takes {', '.join(_ALL_PARAMS)}"
            raise TypeError(msg)
        if value is not None and key not in allowed:
            where = ", ".join(f.value for f, keys in _PARAMS.items() if key in keys)
            msg = f"{key}={value!r} does not apply to format {fmt}; it is a parameter of {where}"
            raise ValueError(msg)
    required = {SparseFormat.BSR: ("block",), SparseFormat.STRUCTURED_N_TO_M: ("n", "m")}.get(fmt, ())
    missing = [k for k in required if params.get(k) is None]
    if missing:
        msg = f"format {fmt} needs {' and '.join(missing)} (e.g. " + (
            "block=(4, 4))" if fmt is SparseFormat.BSR else "n=2, m=4)")
        raise ValueError(msg)


def _select(flat: dict[str, Any], include: Patterns, exclude: Patterns) -> set[str]:
    """Names of the arrays ``include`` takes and ``exclude`` does not; unused patterns are errors."""
    inc = _pattern_list(include, "include") if include is not None else None
    exc = _pattern_list(exclude, "exclude")
    arrays = [n for n, v in flat.items() if _is_array(v)]
    for what, patterns in (("include", inc or []), ("exclude", exc)):
        for p in patterns:
            if not any(_matches(p, n) for n in arrays):
                shown = ", ".join(repr(n) for n in arrays[:6]) + (", ..." if len(arrays) > 6 else "")
                msg = f"{what} pattern {describe(p)} matches no array (arrays: {shown})"
                raise ValueError(msg)
    return {
        n for n in arrays
        if (inc is None or any(_matches(p, n) for p in inc)) and not any(_matches(p, n) for p in exc)
    }


def _failed(name: str, value: Any, error: Exception, on_error: str) -> Any:
    if on_error == "raise":
        raise type(error)(f"tensor {name!r}: {error}") from None
    if on_error == "warn":
        warnings.warn(f"tensor {name!r} left dense: {error}", stacklevel=3)
    return value


def decompress_model(model: Mapping[str, Any], /) -> dict[str, Any]:
    """The dense model: every :class:`~arraysparse.SparseCompressionResult` of ``model`` decompressed.

    The tree comes back nested as ``model`` (plain dicts); every other value
    is passed through as it is. Each array comes back in its result's
    library, dtype and device (:meth:`~arraysparse.SparseCompressionResult.to_dense`).

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> packed = {"w": asp.compress(np.eye(2), "coo"), "b": np.zeros(2)}
    >>> asp.decompress_model(packed)
    {'w': array([[1., 0.],
           [0., 1.]]), 'b': array([0., 0.])}
    """
    flat = flatten_model(model)
    out = {n: v.to_dense() if isinstance(v, SparseCompressionResult) else v for n, v in flat.items()}
    return unflatten_model(out, like=model)
