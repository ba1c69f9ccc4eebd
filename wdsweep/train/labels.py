"""Targets as a loader gives them, made what training takes: class labels 0..K-1 of shape (n,).

A loader's class labels may be integers, booleans, a column (n, 1), or text ('cat', 'dog'), which
become 0..K-1 in sorted order of all three splits' labels, as a csv's text column does
(wdsweep.train.data). Regression targets must be numbers (checked in wdsweep.datasets.to_splits).
"""
from __future__ import annotations

import logging
from typing import Dict, Tuple

import numpy as np

from wdsweep.train.splits import DataProblem

log = logging.getLogger(__name__)


def is_numeric(y: np.ndarray) -> bool:
    """Numbers or booleans: what a regression target or a coded label may be."""
    return y.dtype == np.bool_ or np.issubdtype(y.dtype, np.number)


def is_text(y: np.ndarray) -> bool:
    """Labels given as strings: a str or bytes array, or an object array of str (pandas')."""
    return y.dtype.kind in "US" or (y.dtype == object and all(isinstance(v, (str, bytes)) for v in y.reshape(-1)))


def class_labels(y, split: str) -> np.ndarray:
    """Class labels as (n,): a column (n, 1) is flattened; bools are 0 and 1; anything wider is refused."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise DataProblem(f"{split}: classification labels of shape {y.shape}: one label per row, (n,) or (n, 1)")
    return y.astype(np.int64) if y.dtype == np.bool_ else y


def text_labels_coded(arrays: Dict[str, Tuple]) -> Dict[str, Tuple]:
    """The splits' (x, labels) with text labels coded 0..K-1, in sorted order of the labels of all
    three splits; the log names the mapping. Splits of other labels are returned as they are.
    Text beside numbers in another split is refused: their classes could not be matched."""
    text = {s: is_text(np.asarray(y)) for s, (_, y) in arrays.items()}
    if not any(text.values()):
        return arrays
    if not all(text.values()):
        numeric = next(s for s, worded in text.items() if not worded)
        worded = next(s for s, worded in text.items() if worded)
        raise DataProblem(f"{worded}: class labels are text, {numeric}'s are {np.asarray(arrays[numeric][1]).dtype}: "
                          "give every split's labels alike")
    words = {s: np.asarray(y).astype(str) for s, (_, y) in arrays.items()}
    classes = np.unique(np.concatenate(list(words.values())))
    shown = ", ".join(f"{c!r}={i}" for i, c in enumerate(classes[:10].tolist()))
    shown += ", ..." if len(classes) > 10 else ""
    log.info("class labels are text: %d classes, coded in sorted order (%s)", len(classes), shown)
    return {s: (x, np.searchsorted(classes, words[s]).astype(np.int64)) for s, (x, _) in arrays.items()}
