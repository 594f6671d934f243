"""``FeatureEncoder``: model inputs from an event's features, with a bound on how many there can be.

Strings are one-hot (``"color=red": 1``), booleans 0/1, numbers as they are. A linear model keeps a
weight (and its scaler a mean and a variance) per input, so a string feature with an ever-new value
(a user id, a session id) or an ever-new feature *name* would grow the model, the memory and every
snapshot without end. Two caps bound them by design:

* ``max_string_values`` distinct values are admitted per string feature, first come first served;
  a later new value is encoded as the feature's overflow bucket, ``"<name>=__other__"`` (one input
  that learns what the rare values have in common), and counted in ``string_overflow``;
* ``max_inputs`` distinct model inputs in all (numeric and boolean feature names, admitted
  string values, one overflow bucket per string feature): once full, a new string value goes to
  its feature's overflow bucket, and a feature with a new *name* is left out of the model input
  (counted in ``features_dropped``).

What was admitted is engine state: it travels in snapshots, and the same events in the same order
give the same mapping, on a replay too. The first overflow of each feature is logged once.

>>> enc = FeatureEncoder(max_string_values=2, max_inputs=100)
>>> counters = {"string_overflow": 0, "features_dropped": 0}
>>> [enc.encode({"n": 2.0, "color": c, "on": True}, counters) for c in ("red", "blue", "green")]
... # doctest: +NORMALIZE_WHITESPACE
[{'n': 2.0, 'color=red': 1, 'on': 1}, {'n': 2.0, 'color=blue': 1, 'on': 1},
 {'n': 2.0, 'color=__other__': 1, 'on': 1}]
>>> enc.encode({"n": 1.0, "color": "red"}, counters), counters["string_overflow"]
({'n': 1.0, 'color=red': 1}, 1)
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("driftline.encoding")

OVERFLOW = "__other__"


class FeatureEncoder:
    """Encode feature dicts for the model; the admitted names and values are its state."""

    #: Whether reaching a cap is logged (once per feature). The backtest's no-adaptation baseline
    #: runs on the same stream: its engine's warning would be the same line a second time.
    log_caps = True

    def __init__(self, max_string_values: int = 1000, max_inputs: int = 10_000) -> None:
        self.max_string_values = max_string_values
        self.max_inputs = max_inputs
        #: Feature names the model may see (numeric, boolean or string features).
        self.names: set[str] = set()
        #: Admitted values per string feature.
        self.values: dict[str, set[str]] = {}
        #: Model inputs admitted so far (counted against ``max_inputs``).
        self.inputs = 0
        #: String features that overflowed (said once in the log), and whether a name was dropped.
        self.overflowed: set[str] = set()
        self.dropped_noted = False

    def encode(self, x: dict[str, Any], counters: dict[str, int]) -> dict[str, Any]:
        """The model input for ``x``; counts overflows and dropped features in ``counters``."""
        names = self.names
        for value in x.values():
            kind = type(value)
            if kind is str or kind is bool:
                break
        else:
            if x.keys() <= names:
                return x  # the common case: all numeric, all known: no copy
        out: dict[str, Any] = {}
        for name, value in x.items():
            if name not in names and not self._admit_name(name, type(value) is str, counters):
                continue
            kind = type(value)
            if kind is str:
                out[self._string_input(name, value, counters)] = 1
            elif kind is bool:
                out[name] = int(value)
            else:
                out[name] = value
        return out

    def _admit_name(self, name: str, string: bool, counters: dict[str, int]) -> bool:
        # A string feature reserves its overflow bucket with its name: one input.
        if self.inputs >= self.max_inputs:
            counters["features_dropped"] = counters.get("features_dropped", 0) + 1
            if not self.dropped_noted:
                self.dropped_noted = True
                if self.log_caps:
                    log.warning(
                        "feature %r and any later new feature name are left out of the model input: "
                        "it already has engine.max_inputs (%d) inputs (counted in features_dropped)",
                        name,
                        self.max_inputs,
                    )
            return False
        self.names.add(name)
        self.inputs += 1
        if string:
            self.values.setdefault(name, set())
        return True

    def _string_input(self, name: str, value: str, counters: dict[str, int]) -> str:
        admitted = self.values.get(name)
        if admitted is None:  # a name first seen as a number or a boolean, now a string
            admitted = self.values[name] = set()
        if value in admitted:
            return f"{name}={value}"
        if len(admitted) < self.max_string_values and self.inputs < self.max_inputs:
            admitted.add(value)
            self.inputs += 1
            return f"{name}={value}"
        counters["string_overflow"] = counters.get("string_overflow", 0) + 1
        if name not in self.overflowed and self.log_caps:
            self.overflowed.add(name)
            cap = (
                f"engine.max_string_values ({self.max_string_values}) values"
                if len(admitted) >= self.max_string_values
                else f"engine.max_inputs ({self.max_inputs}) model inputs in all"
            )
            log.warning(
                "string feature %r has more distinct values than the model admits: %s; later new "
                "values are encoded as %s=%s (counted in string_overflow)",
                name,
                cap,
                name,
                OVERFLOW,
            )
        return f"{name}={OVERFLOW}"

    def describe(self) -> dict[str, Any]:
        """What was admitted, for a summary."""
        return {
            "inputs": self.inputs,
            "max_inputs": self.max_inputs,
            "string_values": {name: len(v) for name, v in sorted(self.values.items())},
            "overflowed": sorted(self.overflowed),
        }


def encode_features(x: dict[str, Any]) -> dict[str, Any]:
    """Model input: strings one-hot (``"color=red": 1``), booleans 0/1, numbers as they are.

    Stateless and unbounded, for a model outside the engine; the engine encodes with its
    :class:`~driftline.learners.encoding.FeatureEncoder`, which caps the inputs an event stream can create.

    >>> encode_features({"n": 2.0, "color": "red", "on": True})
    {'n': 2.0, 'color=red': 1, 'on': 1}
    """
    for value in x.values():
        kind = type(value)
        if kind is str or kind is bool:
            break
    else:
        return x  # the common, all-numeric case: no copy
    out: dict[str, Any] = {}
    for name, value in x.items():
        if type(value) is str:
            out[f"{name}={value}"] = 1
        else:
            out[name] = int(value) if type(value) is bool else value
    return out
