"""Errors a person fixes by calling a command differently (shared by the drivers and the CLI)."""


class UsageError(Exception):
    """A mistake in how the command was called: printed plainly, exit status 2."""
