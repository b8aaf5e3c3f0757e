"""``arraysparse demo``: :func:`arraysparse.demo.run.run_demo` from the command line."""

from __future__ import annotations

import argparse

from . import progress_wanted


def run(args: argparse.Namespace) -> int:
    from ..demo.run import run_demo

    run_demo(args.output, plots=not args.no_plots, progress=progress_wanted(args),
             out=(lambda line: None) if args.quiet else (lambda line: print(line, flush=True)))
    return 0
