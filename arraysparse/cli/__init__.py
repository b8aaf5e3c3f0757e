"""The ``arraysparse`` command line (also ``python -m arraysparse``).

Subcommands: ``prune`` (a checkpoint in, the pruned checkpoint out, tensor by
tensor), ``compress`` / ``decompress`` (to and from a compressed checkpoint),
``inspect`` (a table per tensor, ``--json`` for machines), ``plot`` (PNGs,
needs matplotlib) and ``demo`` (a small trained model shipped with the
package, pruned every way). See ``docs/cli.md``.

Bad input (an unreadable, truncated or mismatched file, an unknown pattern,
a sparsity out of range, the output equal to the input) ends the command
with a one-line message on stderr and exit status 2, writing nothing; so do
argparse's usage errors.

Outputs: a path ending in ``.safetensors`` or ``.npz`` is one file; any other
path is a directory of safetensors shards of at most ``--max-shard-size``
bytes of tensor data (default 5GB, as Hugging Face's ``save_pretrained``)
and ``model.safetensors.index.json``; ``--overwrite`` replaces a checkpoint
such a directory already holds. Progress bars (tqdm) go to stderr on a terminal,
never with ``--quiet``. Start-up stays light: matplotlib and tqdm are
imported only by the subcommands that draw or report progress.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ._args import (
    PATTERN_HELP,
    argparse_type,
    parse_block,
    parse_number,
    parse_pattern,
    parse_positive_int,
    parse_shard_size,
)
from ._args import parse_sparsity as _parse_sparsity

__all__ = ["main"]

#: Exit status of bad input (a file, an argument); argparse's usage errors use it too.
EXIT_INPUT = 2

FORMATS = ("coo", "csr", "csc", "bsr", "ell", "dia", "n:m", "2:4", "bitmask")
#: The shard size of a directory output when ``--max-shard-size`` is not given (Hugging Face's default).
DEFAULT_SHARD_SIZE = "5GB"
#: The suffixes of a file output; any other output is a directory of shards.
FILE_SUFFIXES = (".safetensors", ".npz")


class InputError(Exception):
    """Bad input found by the command line itself (not the library): exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit status 2), pointing at ``--help``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input or usage).

    Examples
    --------
    >>> from arraysparse.cli import main
    >>> main(["prune", "model.safetensors", "model.safetensors", "--sparsity", "0.5"])  # output == input
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as SIGPIPE would
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (InputError, ValueError, TypeError, OSError, KeyError) as e:
        _fail(args.command, e)
        return EXIT_INPUT
    except ImportError as e:  # an optional dependency (matplotlib, tqdm) missing: not bad input
        _fail(args.command, e)
        return 1
    except KeyboardInterrupt:
        print(f"arraysparse {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130


def _fail(command: str, e: BaseException) -> None:
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    if isinstance(e, KeyError):
        text = f"no tensor named {text!r}"
    elif isinstance(e, OSError) and e.filename is not None and str(e.filename) not in text:
        text = f"{e.filename}: {e.strerror or text}"
    line = " ".join(text.split())  # one line, whatever the library's message
    print(f"arraysparse {command}: error: {line}", file=sys.stderr)


#: Weight files of the formats a model directory may hold: never carried from a model directory
#: to the output (the output holds the new weights; a stale dense copy beside them would be loaded
#: by some tools).
_WEIGHT_SUFFIXES = (".safetensors", ".npz", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".hdf5", ".msgpack", ".gguf",
                    ".onnx", ".npy", ".index.json")

#: Outputs named so are a mistake, never a directory of shards to create: another tool's weight
#: format, a typo of .safetensors, or a file of some other kind.
_OTHER_FILE_SUFFIXES = (
    frozenset(_WEIGHT_SUFFIXES) - set(FILE_SUFFIXES) - {".index.json"}
    | {".safetensor", ".safetenors", ".safetensores", ".st", ".json", ".pkl", ".pickle", ".zip", ".tar", ".gz"}
)


def output_options(args: argparse.Namespace) -> dict[str, object]:
    """How ``args.dst`` is written: one file (its suffix is ``.safetensors`` or ``.npz``; no
    options), or a directory of shards (``max_shard_size``, default 5GB, and ``overwrite``).

    Examples
    --------
    >>> from arraysparse.cli import build_parser, output_options
    >>> output_options(build_parser().parse_args(["decompress", "in.safetensors", "out/"]))
    {'max_shard_size': '5GB', 'overwrite': False}
    >>> output_options(build_parser().parse_args(["decompress", "in.safetensors", "out.npz"]))
    {}
    """
    from pathlib import Path

    dst = Path(args.dst)
    suffix = dst.suffix.lower()
    if suffix in _OTHER_FILE_SUFFIXES and not dst.is_dir():
        msg = (
            f"{args.dst!r} ends in {dst.suffix!r}, which arraysparse does not write: name a .safetensors or "
            ".npz file, or a directory (of .safetensors shards) without a file suffix"
        )
        raise InputError(msg)
    if suffix in FILE_SUFFIXES:
        if args.max_shard_size is not None:
            what = "an .npz file, which is never sharded" if suffix == ".npz" else "one .safetensors file"
            msg = (
                f"--max-shard-size is for a directory output, and {args.dst!r} is {what}; drop the option, "
                "or give a directory"
            )
            raise InputError(msg)
        return {}
    size = DEFAULT_SHARD_SIZE if args.max_shard_size is None else args.max_shard_size
    return {"max_shard_size": size, "overwrite": args.overwrite}


def copy_companions(src: str, dst: str, *, quiet: bool) -> list[str]:
    """When ``src`` is a model directory and ``dst`` a directory output, copy the files beside the
    weights (``config.json``, ``generation_config.json``, tokenizer files, ...) that ``dst``
    lacks, so the output is a model directory too; the names copied.

    Weight files of any format, hidden files and subdirectories stay behind; a file ``dst``
    already has is kept as it is. Each copy is atomic (written whole, then named).
    """
    from pathlib import Path

    from ..io._atomic import AtomicFile

    s, d = Path(src), Path(dst)
    if not s.is_dir() or not d.is_dir() or s.resolve() == d.resolve():
        return []
    copied = []
    for f in sorted(s.iterdir()):
        name = f.name
        if name.startswith(".") or not f.is_file() or name.lower().endswith(_WEIGHT_SUFFIXES):
            continue
        if (d / name).exists():
            continue
        with AtomicFile(d / name) as out, open(f, "rb") as inp:
            while chunk := inp.read(1 << 20):
                out.file.write(chunk)
        copied.append(name)
    if copied and not quiet:
        shown = ", ".join(copied[:4]) + (f" and {len(copied) - 4} more" if len(copied) > 4 else "")
        print(f"copied beside the weights from {src}: {shown}")
    return copied


def progress_wanted(args: argparse.Namespace) -> bool:
    """Bars on a terminal only, and never with ``--quiet``."""
    return not args.quiet and sys.stderr.isatty()


def _lazy(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """The runner of a subcommand, imported only when that subcommand runs."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{module}"), function)(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand (cheap: nothing heavy is imported)."""
    from .. import __version__

    sparsity = argparse_type(_parse_sparsity, "sparsity")
    pattern = argparse_type(parse_pattern, "pattern")
    parser = _Parser(
        prog="arraysparse",
        description="Prune, compress, inspect and plot checkpoints (.safetensors, .npz, shard directories).",
        epilog="Run 'arraysparse demo' for a tour on a small model shipped with the package.",
    )
    parser.add_argument("--version", action="version", version=f"arraysparse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str, run: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(run=run)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars, no summary")
        return p

    def output(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--max-shard-size", type=argparse_type(parse_shard_size, "size"), metavar="SIZE",
            help="a directory output: the most bytes of tensor data per shard, e.g. 5GB, 500MB, 2GiB "
            f"(default {DEFAULT_SHARD_SIZE}, as Hugging Face); a .safetensors or .npz output is one file",
        )
        p.add_argument("--overwrite", action="store_true",
                       help="a directory output: replace the checkpoint it already holds (its other files stay)")

    p = command("prune", "Prune a checkpoint tensor by tensor; write the pruned checkpoint.", _lazy("_prune", "run"))
    p.add_argument("src", help="a .safetensors or .npz file, or a directory of safetensors shards")
    p.add_argument("dst", help="the pruned checkpoint to write (.safetensors, .npz, or a directory of shards), "
                   "never the input")
    p.add_argument("-s", "--sparsity", type=sparsity, help="fraction pruned: 0.5 or 50%% (not for N:M)")
    p.add_argument("-p", "--pattern", type=pattern, help=PATTERN_HELP)
    p.add_argument(
        "--strategy", default="magnitude", choices=("magnitude", "random", "wanda", "sparsegpt"),
        help="how values are ranked (default magnitude); wanda and sparsegpt need --calibration",
    )
    p.add_argument(
        "--scope", choices=("global", "layer"),
        help="one threshold over all pruned tensors (unstructured only), or each tensor to its own "
        "sparsity (default: global for unstructured magnitude pruning, else layer)",
    )
    p.add_argument(
        "--include", action="append", metavar="GLOB",
        help="prune only tensors matching (repeatable; default: floating-point tensors of rank >= 2)",
    )
    p.add_argument("--exclude", action="append", metavar="GLOB", help="never prune these (repeatable)")
    p.add_argument(
        "--calibration", metavar="FILE",
        help="statistics per weight, named as the weight: Wanda's input norms (in_features,) or "
        "SparseGPT's Hessian (in, in)",
    )
    p.add_argument("--min-sparsity", type=sparsity, default=0.0, help="global scope: per-tensor lower bound")
    p.add_argument("--max-sparsity", type=sparsity, default=1.0, help="global scope: per-tensor upper bound")
    p.add_argument("--seed", type=int, default=0, help="random strategy: the seed (default 0)")
    p.add_argument(
        "--ord", type=argparse_type(parse_number, "ord"), default=2.0,
        help="structured and block patterns: the norm ranking slices (default 2)",
    )
    p.add_argument("--comparison", choices=("row", "layer"), default="row", help="wanda: per output row (default)")
    p.add_argument("--block-size", type=argparse_type(parse_positive_int, "block size"), default=128,
                   help="sparsegpt: columns per block (default 128)")
    p.add_argument("--damp", type=argparse_type(parse_number, "damp"), default=0.01,
                   help="sparsegpt: dampening (default 0.01)")
    p.add_argument("--json", action="store_true", help="print the per-tensor report as JSON")
    output(p)

    p = command("compress", "Compress the tensors of a checkpoint into a compressed checkpoint.",
                _lazy("_compress", "run_compress"))
    p.add_argument("src", help="a .safetensors or .npz file, or a directory of safetensors shards")
    p.add_argument("dst", help="the compressed checkpoint to write (.safetensors, .npz, or a directory of shards)")
    p.add_argument("-f", "--format", default="csr", type=str.lower, choices=FORMATS,
                   help="sparse format (default csr)")
    p.add_argument("--block", type=argparse_type(parse_block, "block"), help="bsr: block shape RxC")
    p.add_argument("--nm", type=pattern, help="n:m: the N:M pattern of the tensors (e.g. 4:8)")
    p.add_argument("--include", action="append", metavar="GLOB",
                   help="compress only tensors matching (default: floating-point tensors of rank >= 2)")
    p.add_argument("--exclude", action="append", metavar="GLOB", help="keep these dense (repeatable)")
    output(p)

    p = command("decompress", "Turn a compressed checkpoint back into a dense one.",
                _lazy("_compress", "run_decompress"))
    p.add_argument("src", help="a compressed checkpoint written by 'arraysparse compress'")
    p.add_argument("dst", help="the dense checkpoint to write (.safetensors, .npz, or a directory of shards)")
    output(p)

    p = command("inspect", "Print a table per tensor: shape, dtype, sparsity, patterns, bytes per format.",
                _lazy("_inspect", "run"))
    p.add_argument("src", help="a .safetensors or .npz file, or a directory of safetensors shards")
    p.add_argument("--json", action="store_true", help="JSON instead of the table")
    p.add_argument("--include", action="append", metavar="GLOB", help="only tensors matching (repeatable)")

    p = command("plot", "Draw PNGs: per-layer sparsity, mask heat maps, N:M group occupancy (matplotlib).",
                _lazy("_plots", "run"))
    p.add_argument("src", nargs="+", help="one or more checkpoints (several are drawn side by side)")
    p.add_argument("-o", "--output", default="arraysparse-plots", help="directory for the PNGs (default %(default)s)")
    p.add_argument("--tensor", action="append", metavar="NAME", help="heat maps of these tensors (default: the "
                   "largest matrices, up to 6)")
    p.add_argument("-m", "--group", type=argparse_type(parse_positive_int, "group"), default=4,
                   help="group size m of the occupancy plot (default 4)")

    p = command("demo", "Prune a small model shipped with the package every way: accuracy, sizes, plots.",
                _lazy("_demo", "run"))
    p.add_argument("-o", "--output", default="arraysparse-demo",
                   help="directory for checkpoints and plots (default %(default)s)")
    p.add_argument("--no-plots", action="store_true", help="skip the plots (no matplotlib needed)")
    return parser

