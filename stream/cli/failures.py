"""How a command fails: one line on stderr, never a traceback, and quiet when stdout's reader left."""

from __future__ import annotations

import sys


def fail(command: str, message: str, status: int = 1) -> int:
    """``driftline <command>: <message>`` on stderr (settings redacted); returns ``status``."""
    import contextlib

    from driftline.settings import redact_text

    prefix = f"driftline {command}: " if command else "driftline: "
    with contextlib.suppress(OSError):  # stderr is gone too: the exit status still tells
        print(prefix + redact_text(message), file=sys.stderr)
    return status


def stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on its write end)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False  # not a file descriptor (tests) or no poll(): cannot tell


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit does not fail a second time."""
    import contextlib
    import os

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def flush_stdout() -> bool:
    """Flush stdout; ``False`` (and stdout silenced) when its reader has gone."""
    try:
        sys.stdout.flush()
        return True
    except BrokenPipeError:
        silence_stdout()
        return False


def broken_pipe(command: str, exc: BrokenPipeError) -> int:
    """``driftline ... | head``: the reader closed stdout early. Silent, like other Unix tools,
    with exit status 1 (https://docs.python.org/3/library/signal.html#note-on-sigpipe). A broken
    pipe elsewhere (a socket) is one line on stderr."""
    if not flush_stdout() or stdout_closed():
        silence_stdout()
        return 1
    return fail(command, f"broken pipe: {exc.strerror or exc}")
