"""The doctests of every module of the ``driftline`` package, and the README's examples.

They run here, imported under their installed names (``driftline.learners.engine``), rather than
through pytest's ``--doctest-modules``, which imports a file by its path and would load
``stream/live/worker.py`` a second time as ``stream.live.worker``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


#: The package and the two it mounts from other folders (an editable install finds those through
#: its own finder, not on ``driftline.__path__``).
ROOTS = ("driftline", "driftline.learners", "driftline.detectors")


def _modules() -> list[str]:
    names = set(ROOTS)
    for root in ROOTS:
        package = importlib.import_module(root)
        for info in pkgutil.walk_packages(package.__path__, f"{root}."):
            if not info.name.endswith("__main__"):  # running it is the command line
                names.add(info.name)
    return sorted(names)


def test_every_folder_of_the_package_is_walked() -> None:
    names = _modules()
    for package in ("learners", "detectors", "live", "offline", "cli"):
        assert f"driftline.{package}" in names
    assert "driftline.learners.engine" in names and "driftline.live.worker" in names


@pytest.mark.parametrize("name", _modules())
def test_module_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS, report=True, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctests of {name} failed"


def test_readme_examples() -> None:
    result = doctest.testfile(
        str(REPO / "README.md"), module_relative=False, optionflags=FLAGS, verbose=False
    )
    assert result.attempted > 0, "the README's notebook example has no >>> lines"
    assert result.failed == 0, f"{result.failed} of {result.attempted} README examples failed"
