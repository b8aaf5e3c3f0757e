"""``python -m arraysparse._kernels.cuda.emulate MODE [pytest arguments]``: pytest under a sanitizer.

MODE is ``address`` (AddressSanitizer and UndefinedBehaviorSanitizer) or ``thread``
(ThreadSanitizer). The emulation's sources are built instrumented (cached apart from
the plain build) and pytest runs in this interpreter, not a wrapper script, with the
sanitizer's runtime preloaded and its options set (:func:`sanitizer_env`): the first
report ends the run with a non-zero exit status. pytest captures only ``sys.stdout``
and ``sys.stderr`` (``--capture=sys``, unless the arguments choose): a report goes to
the real standard error, which a captured file descriptor would lose with the process.
"""

from __future__ import annotations

import os
import sys

from . import SANITIZERS, EmulationUnavailable, sanitizer_env


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SANITIZERS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        env = sanitizer_env(argv[0])
    except EmulationUnavailable as e:
        print(f"cannot run the {argv[0]} sanitizer: {e}", file=sys.stderr)
        return 3
    args = argv[1:]
    if not any(a == "-s" or a.startswith("--capture") for a in args):
        args = ["--capture=sys", *args]
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "pytest", *args], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
