"""A micro-batch's features checked per column instead of per value.

Validating an event's features (:func:`driftline.learners.events.validate_features`) looks at each
value in Python: for 8 features, ~0.8 µs an event, and framing the batch for River's ``*_many``
calls another ~0.7. The batches a live stream sends are mostly alike: the same names, all numbers.
For such a batch the frame is made first, NumPy checks all its values at once, and the same frame
is the model's. Anything else (a missing or extra name, a boolean, text, a null, a value out of
range) gives ``None``: the batch goes the per-event way, whose errors name the event and the
feature.

>>> checked = plain_features([{"a": 1.0, "b": 2.0}, {"b": 4.0, "a": 3.0}], 1e15)
>>> checked[0], checked[1].to_dict("list")
([{'a': 1.0, 'b': 2.0}, {'b': 4.0, 'a': 3.0}], {'a': [1.0, 3.0], 'b': [2.0, 4.0]})
>>> plain_features([{"a": 1.0}, {"a": float("nan")}], 1e15) is None
True
"""

from __future__ import annotations

from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

#: From this on, a float no longer holds every integer: the check in floats would round
#: (2**53 + 1 would pass a limit of 2**53).
_EXACT_INTEGERS = 2.0**53


def plain_features(
    xs: list[Any], max_abs: float, text_names: bool = False
) -> tuple[list[dict[str, int | float]], Any] | None:
    """Copies of the feature dicts ``xs`` and their frame (as ``DataFrame.from_records(xs)``
    makes it), when every one is a dict of the same text names to finite numbers (int or
    float) within ``±max_abs``: exactly what validating each would give. ``None`` otherwise.

    ``text_names``: every name is known to be exactly ``str`` (decoded from JSON), so they need
    no check past the first row's."""
    first = xs[0]
    if type(first) is not dict or not first or max_abs >= _EXACT_INTEGERS:
        return None
    names = list(first)
    width = len(names)
    # The first row first: a stream with a text feature sends it in every event, and that
    # batch must not pay for the other rows' checks before it goes the per-event way.
    if (
        any(type(name) is not str for name in names)
        or not set(map(type, first.values())) <= _NUMBERS
    ):
        return None
    if not all([type(x) is dict and len(x) == width for x in xs]):
        return None
    # Validation spells a name that is not exactly str with str(): a str subclass equal to a
    # name (numpy.str_) would stay one here, and JSON encoders refuse it as a key.
    if not text_names and set(map(type, chain.from_iterable(xs))) != {str}:
        return None
    try:
        # Raises KeyError when a row lacks a name; with its length equal, it has no other.
        rows = list(map(itemgetter(*names), xs)) if width > 1 else [(x[names[0]],) for x in xs]
    except KeyError:
        return None
    # Exact types: a boolean is a number to NumPy and pandas, not to the encoder.
    if not set(map(type, chain.from_iterable(rows))) <= _NUMBERS:
        return None
    # From the rows, the frame from_records makes from the dicts: the same columns, dtypes and
    # memory layout, so River's matrix products add in the same order, to the last bit.
    try:
        frame = pd.DataFrame.from_records(rows, columns=names)
        values = frame.to_numpy(dtype=np.float64)
    except OverflowError:  # an integer past any float (10**400): out of range, per event
        return None
    # False for nan too: the per-event way names it (non_finite, out_of_range).
    if not ((values >= -max_abs) & (values <= max_abs)).all():
        return None
    # Copies: a caller's dicts may change after the batch; a waiting label learns from these.
    return list(map(dict, xs)), frame


_NUMBERS = {float, int}
