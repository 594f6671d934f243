"""A micro-batch's features checked per column instead of per value.

Validating an event's features (:func:`driftline.learners.events.validate_features`) looks at each
value in Python: for 8 features, ~0.8 µs an event, and framing the batch for River's ``*_many``
calls another ~0.7. The batches a live stream sends are mostly alike: the same names, all floats.
For such a batch one array holds every value, NumPy checks them all at once, and the same array
is the model's frame. Anything else (a missing or extra name, an integer, a boolean, text, a null,
a value out of range) gives ``None``: the batch goes the per-event way, whose errors name the
event and the feature.

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


def plain_features(xs: list[Any], max_abs: float) -> tuple[list[dict[str, float]], Any] | None:
    """Copies of the feature dicts ``xs`` and their frame (columns in the first row's order),
    when every one is a dict of the same text names to finite floats within ``±max_abs``:
    exactly what validating each would give. ``None`` otherwise."""
    first = xs[0]
    if type(first) is not dict or not first:
        return None
    names = list(first)
    width = len(names)
    if any(type(name) is not str for name in names):
        return None
    if not all([type(x) is dict and len(x) == width for x in xs]):
        return None
    try:
        # Raises KeyError when a row lacks a name; with its length equal, it has no other.
        rows = list(map(itemgetter(*names), xs)) if width > 1 else [(x[names[0]],) for x in xs]
    except KeyError:
        return None
    # Exact types: a bool or an int would become a float in the array, not in a dict.
    if set(map(type, chain.from_iterable(rows))) != {float}:
        return None
    values = np.array(rows, dtype=np.float64)
    # False for nan too: the per-event way names it (non_finite, out_of_range).
    if not ((values >= -max_abs) & (values <= max_abs)).all():
        return None
    # Copies: a caller's dicts may change after the batch; a waiting label learns from these.
    # Column by column in memory, as DataFrame.from_records lays them out: the model's matrix
    # products then add in the same order, to the last bit.
    return list(map(dict, xs)), pd.DataFrame(np.asfortranarray(values), columns=names)
