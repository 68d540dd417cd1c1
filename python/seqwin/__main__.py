"""The ``seqwin`` command line, as the wheel's console script and ``python -m seqwin``.

It runs the Rust CLI in this process (``seqwin._seqwin.main``): same options,
messages and exit codes as the binary built by ``cargo install``.
"""
import signal
import sys

from ._seqwin import main as _main


def main() -> int:
    """Runs ``seqwin`` with ``sys.argv`` and exits with its code."""
    # Python turns SIGINT into KeyboardInterrupt, which it could only raise
    # after the run; restore the default (Ctrl-C ends the process at once, as
    # with the binary; a run's staging directory is cleaned by the next run).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    code = _main(["seqwin", *sys.argv[1:]])
    sys.exit(code)


if __name__ == "__main__":
    main()
