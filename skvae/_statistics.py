"""NumPy column statistics of the training data, read in place.

Likelihoods call these from ``fit_data`` to learn their constants (a feature's
location and scale, the smallest gap between its values). They read the data in
chunks of rows or groups of columns, so no copy of the matrix is made. Nothing
here imports torch or scikit-learn.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._data import dense_rows

# Rows per chunk and columns per sort: the temporaries of the statistics stay
# at a few MiB, whatever the size of the data.
CHUNK_ROWS = 4096
GAP_COLUMNS = 16

# Statistics of large arrays are computed over groups of columns in parallel
# threads (NumPy releases the GIL), as many as the caller allows (torch's intra-op
# threads: one in a joblib worker), so nothing is oversubscribed.
PARALLEL_MIN_VALUES = 2**20


def take(X, columns):
    """``X[:, columns]``, or ``X`` itself when ``columns`` is None."""
    return X if columns is None else X[:, columns]


def column_groups(columns, shape, n_threads):
    """``columns`` (None: all of an array of ``shape``) split into groups, one
    per thread when the array is large enough to be worth it."""
    n_rows, n_columns = shape
    n_picked = n_columns if columns is None else len(columns)
    n_groups = 1
    if n_rows * n_picked >= PARALLEL_MIN_VALUES:
        n_groups = max(1, min(n_threads, n_picked))
    if n_groups == 1:
        return [columns]
    bounds = np.linspace(0, n_picked, n_groups + 1).round().astype(int)
    if columns is None:  # slices: views of X, not copies
        return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    columns = np.asarray(columns)
    return [columns[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def map_threads(function, items):
    """``[function(item) for item in items]``, in one thread per item."""
    if len(items) == 1:
        return [function(items[0])]
    with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
        return list(pool.map(function, items))


def column_moments(X, columns=None, transform=None):
    """Mean and (population) standard deviation of each column, as float64.

    See :func:`column_moment_sums`, which this reduces.

    >>> import numpy as np
    >>> mean, std = column_moments(np.array([[1.0, 0.0], [3.0, 0.0]]))
    >>> mean.tolist(), std.tolist()
    ([2.0, 0.0], [1.0, 0.0])
    """
    n, mean, m2 = column_moment_sums(X, columns, transform)
    with np.errstate(invalid="ignore", divide="ignore"):
        return mean, np.sqrt(m2 / n)


def column_moment_sums(X, columns=None, transform=None):
    """``(n, mean, m2)`` of each column: row count, mean and sum of squared
    deviations, in float64; mergeable across chunks of rows (:func:`merge_moments`).

    Reads ``X`` in chunks of rows (passed through ``transform``, in float64, if
    given) and merges the chunks' moments with Chan et al.'s pairwise update, so
    memory beyond ``X`` is a chunk. A float32 chunk is not converted: its
    deviations from the chunk's mean are taken in float32 and summed in float64,
    which is accurate to float32's precision (about 1e-7 relative) at a third of
    the cost of a float64 copy; float64 input matches a two-pass float64
    computation to rounding.
    """
    parts = []
    step = dense_rows(X, CHUNK_ROWS)
    for start in range(0, X.shape[0], step):
        block = take(X[start : start + step], columns)
        if transform is not None:
            block = transform(np.asarray(block, dtype=np.float64))
        elif block.dtype not in (np.float32, np.float64):
            block = block.astype(np.float64)
        missing = np.isnan(block)
        parts.append(_chunk_moments(block, missing if missing.any() else None))
    return merge_moments(parts)


def _chunk_moments(block, missing):
    """``(n, mean, m2)`` of each column of ``block`` over its observed entries
    (``missing``: a mask of NaN entries, or None when there are none)."""
    if missing is None:
        n = np.full(block.shape[1], float(block.shape[0]))
        centre = block.mean(axis=0, dtype=np.float64).astype(block.dtype)
        deviation = block - centre
    else:
        n = (~missing).sum(axis=0).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            centre = np.nan_to_num(np.nansum(block, axis=0, dtype=np.float64) / n)
        centre = centre.astype(block.dtype)
        deviation = np.where(missing, 0, block - centre).astype(block.dtype)
    shift = deviation.sum(axis=0, dtype=np.float64)  # the centre's rounding
    safe_n = np.maximum(n, 1)
    block_mean = centre.astype(np.float64) + shift / safe_n
    np.square(deviation, out=deviation)
    block_m2 = np.maximum(deviation.sum(axis=0, dtype=np.float64) - shift**2 / safe_n, 0.0)
    return n, block_mean, block_m2


def merge_moments(parts):
    """Merge ``(n, mean, m2)`` triples of disjoint row sets (Chan et al.); the
    counts ``n`` are per column (columns with missing entries count fewer)."""
    n_total, mean, m2 = 0.0, 0.0, 0.0
    for n, part_mean, part_m2 in parts:
        n = np.asarray(n, dtype=np.float64)
        if not n.any():
            continue
        delta = part_mean - mean
        n_new = n_total + n
        with np.errstate(invalid="ignore", divide="ignore"):
            weight = np.where(n_new > 0, n / n_new, 0.0)
            cross = np.where(n_new > 0, n_total * n / n_new, 0.0)
        mean = mean + delta * weight
        m2 = m2 + part_m2 + np.square(delta) * cross
        n_total = n_new
    return (np.asarray(n_total, dtype=np.float64), np.asarray(mean, dtype=np.float64),
            np.asarray(m2, dtype=np.float64))


def merge_gaps(parts):
    """The smallest positive gap of each column over several row sets' gaps (0
    where none has one). Gaps between values of different sets are not seen, so
    this bounds the gap of the union from above."""
    stacked = np.stack([np.where(gap > 0, gap, np.inf) for gap in parts])
    gaps = stacked.min(axis=0)
    gaps[~np.isfinite(gaps)] = 0.0
    return gaps


def smallest_gaps(X):
    """Smallest positive difference between distinct values of each column (0 if
    the column has fewer than two distinct values).

    >>> smallest_gaps(np.array([[0.0, 1.0], [0.5, 1.0], [2.0, 1.0]])).tolist()
    [0.5, 0.0]
    """
    return gaps_and_repeats(X)[0]


def gaps_and_repeats(X):
    """Each column's smallest positive gap between distinct values (0 if it has
    fewer than two), and its counts of repeated values and of value pairs: in
    sorted order, how many of the steps between neighbouring observed values
    are zero, out of how many steps. Missing entries (NaN) are left out.

    >>> gaps, repeats, pairs = gaps_and_repeats(np.array([[0.0, 1.0], [0.5, 1.0], [0.5, 2.0]]))
    >>> gaps.tolist(), repeats.tolist(), pairs.tolist()
    ([0.5, 1.0], [1.0, 1.0], [2.0, 2.0])
    """
    n_columns = X.shape[1]
    gaps, repeats, pairs = np.zeros(n_columns), np.zeros(n_columns), np.zeros(n_columns)
    # A few columns at a time, so that the sorted copy stays small.
    for start in range(0, n_columns, GAP_COLUMNS):
        block = slice(start, start + GAP_COLUMNS)
        # Sorting in the data's own precision is exact; the differences are
        # taken in float64.
        ordered = np.sort(X[:, block], axis=0).astype(np.float64)
        steps = np.diff(ordered, axis=0)
        with np.errstate(invalid="ignore"):
            valid = ~np.isnan(steps)  # NaN (missing entries) sort last
            repeats[block] = (steps == 0).sum(axis=0)
            pairs[block] = valid.sum(axis=0)
            steps[~(steps > 0)] = np.inf  # ties, and NaN
        gaps[block] = steps.min(axis=0, initial=np.inf)
    gaps[~np.isfinite(gaps)] = 0.0
    return gaps, repeats, pairs


def column_ranges(X, columns=None, chunk_rows=4096):
    """``(low, high, integer)`` of each column: its smallest and largest
    observed (not NaN) value (``inf`` and ``-inf`` where none is observed) and
    whether every observed value is a whole number; read in chunks of rows,
    mergeable across row sets (:func:`merge_ranges`).

    >>> import numpy as np
    >>> column_ranges(np.array([[0.0, 1.5], [3.0, np.nan], [2.0, -1.0]]))
    (array([ 0., -1.]), array([3. , 1.5]), array([ True, False]))
    """
    n_columns = X.shape[1] if columns is None else len(columns)
    low, high = np.full(n_columns, np.inf), np.full(n_columns, -np.inf)
    integer = np.ones(n_columns, dtype=bool)
    chunk_rows = dense_rows(X, chunk_rows)
    for start in range(0, X.shape[0], chunk_rows):
        chunk = np.asarray(take(X[start : start + chunk_rows], columns), dtype=np.float64)
        observed = ~np.isnan(chunk)
        low = np.minimum(low, np.where(observed, chunk, np.inf).min(axis=0))
        high = np.maximum(high, np.where(observed, chunk, -np.inf).max(axis=0))
        integer &= (~observed | (chunk == np.round(chunk))).all(axis=0)
    return low, high, integer


def merge_ranges(parts):
    """The ranges of the union of row sets, from each set's :func:`column_ranges`."""
    lows, highs, integers = zip(*parts)
    return (np.min(lows, axis=0), np.max(highs, axis=0), np.all(integers, axis=0))
