"""Helper of the Wanda and SparseGPT tests: calibrating from torch forward hooks."""

from __future__ import annotations


def calibrate_through_hooks(layer, strategies, xs) -> None:
    """Feed ``xs`` through ``layer`` with two forward hooks: ``lambda m, inp, out:
    strategies[0].calibrate(inp[0])`` and ``strategies[1].hook()``; each call's output must stay
    the layer's own (a hook returning something would replace it)."""
    import torch

    by_lambda, by_hook = strategies
    handles = [layer.register_forward_hook(lambda m, inp, out: by_lambda.calibrate(inp[0])),
               layer.register_forward_hook(by_hook.hook())]
    try:
        with torch.no_grad():
            for x in xs:
                torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias),
                                           rtol=0, atol=0)
    finally:
        for h in handles:
            h.remove()
