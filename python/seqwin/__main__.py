"""The ``seqwin`` command line, as the wheel's console script and ``python -m seqwin``.

It runs the Rust CLI in this process (``seqwin._seqwin.main``): same options,
messages and exit codes as the binary built by ``cargo install``.
"""
import signal
import sys

from ._seqwin import main as _main


def main() -> int:
    """Runs ``seqwin`` with ``sys.argv``; returns its exit code."""
    # Python turns SIGINT into KeyboardInterrupt, which it could only raise
    # after the run; the default disposition ends the process at once, as
    # Ctrl-C ends the binary (the next run removes a staging directory left).
    previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        sys.stdout.flush()
        return _main(["seqwin", *sys.argv[1:]])
    finally:
        signal.signal(signal.SIGINT, previous)


if __name__ == "__main__":
    sys.exit(main())
