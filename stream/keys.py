"""The snapshot signing key, from the environment or a file: the driver loads it and hands the
engine the bytes (:mod:`learners` reads no environment variable)."""

from __future__ import annotations

import os
from pathlib import Path

from driftline.learners.snapshot import SnapshotError, check_key

KEY_ENV = "DRIFTLINE_SNAPSHOT_KEY"
KEY_FILE_ENV = "DRIFTLINE_SNAPSHOT_KEY_FILE"


def load_key(key_file: str = "", environ: dict[str, str] | None = None) -> bytes | None:
    """The signing key: ``$DRIFTLINE_SNAPSHOT_KEY``, else the file named by
    ``$DRIFTLINE_SNAPSHOT_KEY_FILE`` or ``key_file``; ``None`` when none is configured.

    Leading and trailing whitespace is stripped from both (a trailing newline is not key
    material), then :func:`check_key` refuses a key without real entropy.
    """
    env = os.environ if environ is None else environ
    raw: bytes | None = None
    source = ""
    if env.get(KEY_ENV):
        raw, source = env[KEY_ENV].strip().encode(), f"${KEY_ENV}"
    else:
        path = env.get(KEY_FILE_ENV) or key_file
        if path:
            try:
                raw = Path(path).read_bytes().strip()
            except OSError as exc:
                raise SnapshotError(f"cannot read the snapshot key file {path}: {exc}") from None
            source = path
    if raw is None:
        return None
    check_key(raw, source)
    return raw
