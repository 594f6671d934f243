"""The ``driftline`` command line: :func:`driftline.cli.main.main`."""
