"""Tables as users have them: a likelihood per column, and coding to and from numbers.

The torch side sees one float matrix. This module decides each column's likelihood
(:func:`column_specs`), builds a likelihood per block of columns that share one
(:func:`build_observation`), and moves between the user's array or DataFrame and
the float matrix (:func:`encode`, :func:`decode`). What a likelihood accepts and
how its values are coded (categories, rounding) is the likelihood's own business
(:mod:`skvae._likelihoods`); this module only knows DataFrames and dtypes.

The automatic rule (``likelihood="auto"``), for DataFrame columns by dtype:

* bool -> ``"bernoulli"``
* category, object or string -> ``"categorical"``, unless it looks like free
  text or identifiers (see :func:`check_free_text`), which ``fit`` refuses
* integer, or float whose observed values are all whole numbers (an integer
  column with missing values, read as float) -> ``"discrete"`` when its
  training values span at most MAX_DISCRETE_VALUES integers (ratings, years of
  schooling, months of tenure: each value gets its own probability, so heaped
  values come back heaped); wider ones as other numbers:
* other numbers with at most MAX_LEVELS (10) distinct values, each seen ten
  times on average (coded levels, such as a log-coinsurance of five values)
  -> ``"categorical"``
* any other number -> ``"lognormal"`` (with a point mass at 0) when no value
  is negative and either at least ZERO_HEAVY (10%) of the values are 0 or the
  column is skewed to the right (skewness above SKEWED, 1, and the log of its
  positive values more symmetric: prices, incomes, amounts, durations), else
  ``"gaussian"``; integer columns come back rounded to integers

Plain arrays carry no per-column dtypes, so under ``"auto"`` every column of an
array is ``"gaussian"``.
"""

import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Number

import numpy as np
import scipy.sparse as sp

from ._data import SparseRows, is_sparse
from ._likelihoods import (
    BUILT_INS,
    LIKELIHOODS,
    Likelihood,
    Observation,
    build_likelihood,
    category_slots,
)
from ._warn import warn

AUTO = "auto"
MAX_DISCRETE_VALUES = 100
# A number column of at most this many distinct values, each seen ten times on
# average, holds coded levels: categorical under "auto".
MAX_LEVELS = 10
# Under likelihood="auto", ranks may read a numeric column differently (each
# sees its own shard's range and shape): they agree on the widest reading.
_NUMERIC_READINGS = ("negbinom", "discrete", "lognormal", "gaussian")
# The automatic rule refuses a text or category column with more categories
# than this (after min_frequency and max_categories group the rare ones) ...
MAX_AUTO_CATEGORIES = 1000
# ... or with more than this many that are over half its observed entries.
MIN_IDENTIFIER_CATEGORIES = 50


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: its name, likelihood (a built-in's name or a user's
    class or factory) and dtype (None for arrays)."""

    name: object
    likelihood: object
    dtype: object = None


def _pandas():
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is needed only for DataFrames
        return None
    return pd


def is_dataframe(X):
    pd = _pandas()
    return pd is not None and isinstance(X, pd.DataFrame)


def _foreign_frame(X):
    """``X`` as a narwhals DataFrame when it is an eager DataFrame of another
    library than pandas that narwhals knows (polars, pyarrow, modin, cuDF,
    ...); None otherwise."""
    if is_dataframe(X) or isinstance(X, np.ndarray):
        return None
    try:
        import narwhals.stable.v2 as nw
    except ImportError:  # scikit-learn older than 1.7 does not bring narwhals
        return None
    if not nw.dependencies.is_into_dataframe(X):
        return None
    return nw.from_native(X, eager_only=True)


def as_pandas(X):
    """``X`` as a pandas DataFrame when it is a DataFrame of another library
    that narwhals knows (polars, pyarrow, modin, cuDF, ...), with that
    library's name; otherwise ``X`` as it is and None."""
    frame = _foreign_frame(X)
    if frame is None:
        return X, None
    import narwhals.stable.v2 as nw

    converted = frame.to_pandas()
    for name, dtype in frame.schema.items():
        column = converted[name]
        # An integer or boolean column with nulls comes over as float or object:
        # it becomes pandas's nullable twin, so that it is read as pandas would.
        if dtype.is_integer() and column.dtype.kind == "f":
            converted[name] = column.astype(str(dtype))  # Int64, UInt8, ...
        elif dtype == nw.Boolean and column.dtype == object:
            converted[name] = column.astype("boolean")
    return converted, nw.get_native_namespace(frame).__name__


def enum_categories(X):
    """The categories of each Enum column of a DataFrame of another library
    (polars's ``pl.Enum``), by column name: pandas reads such a column as a
    plain categorical, which would otherwise come back as polars's
    ``Categorical``. Empty for pandas DataFrames and arrays."""
    frame = _foreign_frame(X)
    if frame is None:
        return {}
    import narwhals.stable.v2 as nw

    return {str(name): [str(c) for c in dtype.categories]
            for name, dtype in frame.schema.items() if dtype == nw.Enum}


def from_pandas(frame, library, enums=None):
    """A pandas DataFrame in ``library`` (a name from :func:`as_pandas`; None
    or "pandas" leaves it as it is), its columns named in ``enums`` (from
    :func:`enum_categories`) cast back to Enums of those categories."""
    if library in (None, "pandas") or not is_dataframe(frame):
        return frame
    import importlib

    import narwhals.stable.v2 as nw

    table = nw.from_native(frame, eager_only=True).to_arrow()
    out = nw.from_arrow(table, backend=importlib.import_module(library))
    casts = [nw.col(name).cast(nw.Enum(categories))
             for name, categories in (enums or {}).items() if name in out.columns]
    return (out.with_columns(*casts) if casts else out).to_native()


def _column(X, j):
    if is_sparse(X):
        return X[:, [j]].toarray().ravel()
    return X.iloc[:, j] if is_dataframe(X) else X[:, j]


class _LazyColumns(Sequence):
    """The columns ``columns`` of a sparse matrix ``X``, each densified when
    read: a count likelihood built for 20,000 columns takes their number and
    reads none of them. ``complete``: none of them has a missing entry."""

    complete = True

    def __init__(self, X, columns):
        self.X, self.columns = X, list(columns)

    def __len__(self):
        return len(self.columns)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        return _column(self.X, self.columns[i])


def auto_array_likelihood(X):
    """The likelihood ``"auto"`` gives every column of an array: ``"negbinom"``
    for counts (an integer NumPy array, or a sparse matrix, whose values are
    all non-negative whole numbers), else ``"gaussian"``. A float array is
    read as measurements whatever its values (grey levels stored as floats
    stay Gaussian); a DataFrame is read column by column instead."""
    if not (is_sparse(X) or np.dtype(X.dtype).kind in "iu"):
        return "gaussian"
    values = X.data if is_sparse(X) else X
    whole = values.size == 0 or (values.min() >= 0 and (
        np.dtype(values.dtype).kind in "iu"
        or all((part == np.round(part)).all() for part in stored_parts(values))))
    return "negbinom" if whole else "gaussian"


# A check of a sparse matrix's stored values reads this many at a time: its
# temporaries (a rounded copy, masks) stay small next to the matrix.
STORED_CHUNK = 2**23


def stored_parts(data):
    """The stored values ``data`` of a sparse matrix (1-d), in views of at
    most :data:`STORED_CHUNK` values."""
    return (data[start : start + STORED_CHUNK] for start in range(0, data.size, STORED_CHUNK))


def check_sparse_values(X):
    """Refuse a sparse matrix with NaN or infinite stored values, reading
    them a chunk at a time."""
    for part in stored_parts(X.data):
        if np.isnan(part).any():
            raise ValueError(
                "X is a sparse matrix with NaN entries. In a sparse matrix the entries "
                "not stored are zeros, and skvae does not read NaN as missing there; "
                "pass a dense array (NaN marks missing entries) instead.")
        if np.isinf(part).any():
            raise ValueError("Input X contains infinity.")


def _auto_likelihood(column, name):
    pd = _pandas()
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bernoulli"
    if (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    ):
        return "categorical"
    integer = pd.api.types.is_integer_dtype(dtype)
    if integer or pd.api.types.is_float_dtype(dtype):
        # (A nullable column may hold pd.NA; a column with no observed value
        # is refused later, with its name.)
        observed = column.dropna().to_numpy(dtype=np.float64)
        if observed.size and not np.isinf(observed).any() and (
                integer or (observed == np.round(observed)).all()):
            if observed.max() - observed.min() < MAX_DISCRETE_VALUES:
                return "discrete"
        levels = np.unique(observed).size
        if 2 <= levels <= MAX_LEVELS and observed.size >= 10 * levels:
            return "categorical"  # coded levels: each value a category
        return "lognormal" if _right_skewed(observed) else "gaussian"
    raise ValueError(
        f"Column {name!r} has dtype {dtype}, which fits no likelihood; convert it to a "
        "number, bool or category, or drop it."
    )


# A non-negative number column is log-normal under "auto" when at least this
# share of its values are 0 (a point mass the log-normal holds) ...
ZERO_HEAVY = 0.1
# ... or when its skewness exceeds this and the log of its positive values is
# more symmetric.
SKEWED = 1.0


def _right_skewed(values):
    """Whether the observed ``values`` of a number column are non-negative and
    zero-heavy or skewed to the right (see :data:`ZERO_HEAVY`, :data:`SKEWED`)."""
    finite = values[np.isfinite(values)]
    if finite.size < 3 or finite.min() < 0 or (finite > 0).sum() < 3:
        return False
    if np.mean(finite == 0) >= ZERO_HEAVY:
        return True
    raw = _skewness(finite)
    return raw > SKEWED and abs(_skewness(np.log(finite[finite > 0]))) < raw


def _skewness(values):
    spread = values.std()
    return 0.0 if spread == 0 else float(np.mean(((values - values.mean()) / spread) ** 3))


def is_valid_likelihood(value, known):
    """Whether ``value`` names a likelihood: a known name, "auto", or a class or
    factory (any callable)."""
    return (isinstance(value, str) and (value in known or value == AUTO)) or (
        not isinstance(value, str) and callable(value)
    )


def _requested(likelihood, names, known):
    """The likelihood asked for each column: a name, a factory, or AUTO."""
    n_features = len(names)
    if isinstance(likelihood, str) or callable(likelihood):
        requested = [likelihood] * n_features
    elif isinstance(likelihood, dict):
        unknown = [key for key in likelihood if key not in names]
        if unknown:
            raise ValueError(
                f"likelihood names columns that are not in X: {unknown}; the columns "
                f"are {list(names)}."
            )
        requested = [likelihood.get(name, AUTO) for name in names]
    else:
        requested = list(likelihood)
        if len(requested) != n_features:
            raise ValueError(
                f"likelihood lists {len(requested)} likelihoods but X has {n_features} "
                "columns; give one per column."
            )
    bad = sorted({str(r) for r in requested if not is_valid_likelihood(r, known)})
    if bad:
        raise ValueError(
            f"Unknown likelihood {bad}; choose from {sorted(known)} or 'auto', or pass "
            "a skvae.Likelihood subclass or factory."
        )
    return requested


def column_specs(X, likelihood, known, covariates=None):
    """A :class:`ColumnSpec` per column of ``X`` for the ``likelihood``
    parameter; the columns named by ``covariates`` are covariates."""
    frame = is_dataframe(X)
    names = list(X.columns) if frame else list(range(X.shape[1]))
    given = covariate_positions(names, covariates)
    if given and is_sparse(X):
        raise ValueError("covariates are not supported with sparse input yet; pass a "
                         "dense array or a DataFrame.")
    specs = []
    requested = _requested(likelihood, names, known)
    for j in given:
        if isinstance(likelihood, dict) and names[j] in likelihood:
            raise ValueError(f"Column {names[j]!r} is a covariate, which has no likelihood "
                             "(it is an input of the model); drop it from likelihood.")
        requested[j] = _covariate_kind(_column(X, j))
    if not frame and AUTO in [r for r in requested if isinstance(r, str)]:
        kept = [j for j in range(len(names)) if j not in given]
        reading = auto_array_likelihood(X[:, kept] if given else X)
    for j, (name, asked) in enumerate(zip(names, requested)):
        if isinstance(asked, str) and asked == AUTO:
            asked = _auto_likelihood(_column(X, j), name) if frame else reading
        specs.append(ColumnSpec(name, asked, X.dtypes.iloc[j] if frame else None))
    return specs


def covariate_positions(names, covariates):
    """The positions, among the columns ``names``, of the ``covariates``
    parameter's columns (names, or positions for an array); a clear error for
    one that is not a column, or for every column a covariate."""
    if covariates is None:
        return []
    wanted = [covariates] if isinstance(covariates, (str, int, np.integer)) else list(covariates)
    positions = []
    for item in wanted:
        if item in names:
            positions.append(names.index(item))
        else:
            raise ValueError(f"covariates names {item!r}, which is not a column of X; the "
                             f"columns are {list(names)[:20]}.")
    if len(set(positions)) != len(positions):
        raise ValueError(f"covariates names a column twice: {wanted}.")
    if len(positions) == len(names):
        raise ValueError("covariates names every column of X: nothing is left to model.")
    return sorted(positions)


# A numeric covariate of whole numbers with at most this many distinct values
# (batch or site numbers) is categorical; other numbers are numeric.
COVARIATE_LEVELS = 10


def _covariate_kind(column):
    """The covariate likelihood of ``column``: categorical for categories,
    strings, bools and whole numbers of few values, else numeric."""
    pd = _pandas()
    series = pd.Series(column) if not isinstance(column, pd.Series) else column
    dtype = series.dtype
    if not (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)):
        return "covariate:categorical"
    observed = series.dropna().to_numpy(dtype=np.float64)
    whole = observed.size and (observed == np.round(observed)).all()
    few = np.unique(observed).size <= COVARIATE_LEVELS
    return "covariate:categorical" if whole and few else "covariate:numeric"


def group_columns(specs):
    """Column indices by likelihood, in order of first appearance."""
    groups = {}
    for j, spec in enumerate(specs):
        groups.setdefault(spec.likelihood, []).append(j)
    return groups


def build_observation(X, specs, options, collective=None, likelihood=None):
    """The joint likelihood of ``X``'s rows: one likelihood per group of columns
    that share one, built from their raw training values.

    Under a distributed ``collective``, a likelihood that needs every distinct
    value (categories, a range of whole numbers: its ``pooled`` attribute) is
    built from the distinct values seen on any rank and their counts over all
    ranks, so every rank builds the same one. Given the estimator's
    ``likelihood`` parameter, the columns it leaves to the automatic rule are
    first checked by :func:`check_free_text`.
    """
    groups = []
    for factory, columns in group_columns(specs).items():
        values = (_LazyColumns(X, columns) if is_sparse(X)
                  else [_column(X, j) for j in columns])
        if collective is not None and collective.distributed and _pooled(factory):
            values = [_union(collective, column) for column in values]
        groups.append((factory, values, columns))
    automatic = set() if likelihood is None else automatic_columns(specs, likelihood)

    def build():
        for factory, values, columns in groups:
            if factory != "categorical":  # (nor read a sparse matrix's columns)
                continue
            for j, column in zip(columns, values):
                if j in automatic:
                    check_free_text(column, specs[j].name, options)
        return Observation([(build_likelihood(factory, values, options), columns)
                            for factory, values, columns in groups])

    # Built after every collective operation above, so that an error on one
    # rank (a value outside a likelihood's support) is raised on all of them.
    return build() if collective is None else collective.checked(build)


def _pooled(factory):
    if isinstance(factory, str):
        factory = BUILT_INS[factory]
    return getattr(getattr(factory, "func", factory), "pooled", False)


def _union(collective, column):
    """The distinct non-missing values of ``column`` on any rank, as a Series
    whose ``attrs["counts"]`` holds the number of rows of each over all ranks."""
    pd = _pandas()
    local = pd.Series(np.asarray(column, dtype=object)).dropna().value_counts(sort=False)
    counts = {}
    for part in collective.all_gather(list(zip(local.index.tolist(), local.tolist()))):
        for value, count in part:
            counts[value] = counts.get(value, 0) + int(count)
    merged = pd.Series(list(counts), dtype=object, name=getattr(column, "name", None))
    merged.attrs["counts"] = list(counts.values())
    return merged


def automatic_columns(specs, likelihood):
    """The indices of the columns (of ``specs``) that the ``likelihood``
    parameter leaves to the automatic rule."""
    requested = _requested(likelihood, [spec.name for spec in specs], LIKELIHOODS)
    return {j for j, asked in enumerate(requested) if isinstance(asked, str) and asked == AUTO}


def check_free_text(column, name, options):
    """Refuse, under the automatic rule, a text or category ``column`` that
    looks like free text or identifiers: one with more than
    ``MAX_AUTO_CATEGORIES`` categories, or with more than
    ``MIN_IDENTIFIER_CATEGORIES`` that are more than half its observed
    entries, counting those left once ``options``' ``min_frequency`` and
    ``max_categories`` have grouped the rare ones (the infrequent group as
    one)."""
    n_slots, n_observed = category_slots(column, options.get("min_frequency"),
                                         options.get("max_categories"))
    if n_slots <= MAX_AUTO_CATEGORIES and (n_slots <= MIN_IDENTIFIER_CATEGORIES
                                           or n_slots <= n_observed / 2):
        return
    grouped = options.get("min_frequency") is not None or \
        options.get("max_categories") is not None
    raise ValueError(
        f"Column {name!r} has {n_slots} distinct values"
        f"{' (after grouping the rare ones)' if grouped else ''} in {n_observed} observed "
        "entries: it looks like free text or an identifier, which a categorical "
        "likelihood would model with one network output per value (slowly, and "
        "with most values seen once). The automatic likelihood refuses text and "
        f"category columns with more than {MAX_AUTO_CATEGORIES} categories, or more "
        f"than {MIN_IDENTIFIER_CATEGORIES} that are over half the column's observed "
        "entries. Drop the column; or group its rare values into one category with "
        "min_frequency or max_categories (the limits apply to the categories left); "
        f"or set its likelihood explicitly, likelihood={{{name!r}: 'categorical'}}, "
        "to keep it as it is."
    )


def merge_specs(collective, specs):
    """The column specs every rank agrees on: where the automatic rule read a
    column of whole numbers differently on different ranks (their ranges
    differ), every rank takes the widest reading (discrete, then log-normal,
    then Gaussian)."""
    if not collective.distributed:
        return specs
    local = [s.likelihood if isinstance(s.likelihood, str) else None for s in specs]
    keys = collective.all_gather(local)
    merged = []
    for j, spec in enumerate(specs):
        seen = {part[j] for part in keys}
        if len(seen) > 1:
            if not seen <= set(_NUMERIC_READINGS):
                raise ValueError(
                    f"Column {spec.name!r} is read as {sorted(map(str, seen))} on different "
                    "ranks; give likelihood= explicitly for it."
                )
            widest = max(seen, key=_NUMERIC_READINGS.index)
            spec = ColumnSpec(spec.name, widest, spec.dtype)
        merged.append(spec)
    return _pooled_dtypes(collective, merged)


def _pooled_dtypes(collective, specs):
    """``specs`` with each pandas categorical dtype holding the categories of
    every rank's (rank 0's first, then the others' new ones, in order), so
    that every rank's output can hold a category another rank saw."""
    local = [s.dtype if _is_categorical_dtype(s.dtype) else None for s in specs]
    parts = collective.all_gather(local)
    pd = _pandas() if any(d is not None for part in parts for d in part) else None
    pooled = []
    for j, spec in enumerate(specs):
        dtypes = [part[j] for part in parts if part[j] is not None]
        if pd is not None and dtypes and any(d != dtypes[0] for d in dtypes):
            categories = list(dict.fromkeys(c for d in dtypes for c in d.categories))
            dtype = pd.CategoricalDtype(categories, ordered=dtypes[0].ordered)
            spec = ColumnSpec(spec.name, spec.likelihood, dtype)
        pooled.append(spec)
    return pooled


def _is_categorical_dtype(dtype):
    """Whether ``dtype`` is a pandas categorical dtype (without importing pandas)."""
    return type(dtype).__name__ == "CategoricalDtype"


def _float_column(column, name):
    """A DataFrame column as float64, missing entries (NaN, None, pd.NA) as
    NaN, with a clear error for non-numbers and infinity."""
    pd = _pandas()
    dtype = column.dtype
    if getattr(dtype, "kind", "") in "mMc" or isinstance(dtype, (pd.PeriodDtype,
                                                                  pd.IntervalDtype)):
        raise ValueError(
            f"Column {name!r} has dtype {dtype}, which is not a number its likelihood "
            "can model; convert it to numbers first (for dates, e.g. the days since a "
            "reference date)."
        )
    try:
        if pd.api.types.is_extension_array_dtype(column.dtype):
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            values = np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Column {name!r} holds values that are not numbers, which its likelihood "
            f"needs: {exc}"
        ) from None
    if np.isinf(values).any():
        raise ValueError(f"Column {name!r} contains infinity.")
    return values


def missing_entries(M):
    """Whether the float matrix ``M`` has missing (NaN) entries; one cheap sum
    decides for complete data, a chunked scan confirms otherwise. A sparse
    matrix has none: its zeros are zeros, and NaN is refused on input."""
    if is_sparse(M):
        return False
    if not np.isnan(M.sum(dtype=np.float64)):
        return False
    return any(np.isnan(M[start : start + 4096]).any() for start in range(0, len(M), 4096))


def encode(X, observation, specs, handle_unknown="error"):
    """The float matrix the model sees; raises ValueError for values out of support.

    ``X`` is a DataFrame, or an array already validated as finite floats (whose
    dtype is kept, and which is not copied unless a likelihood recodes it).
    A category not seen in ``fit`` raises a ValueError with ``handle_unknown=
    "error"``; with ``"warn"`` and ``"ignore"`` it is coded as a missing
    entry, ``"warn"`` saying so (see :func:`warn_unseen`).
    """
    if is_sparse(X):
        return encode_sparse(X, observation)
    frame = is_dataframe(X)
    out = np.empty((X.shape[0], len(specs)), dtype=np.float64) if frame else X
    unseen = {}
    for lik, cols in zip(observation.likelihoods, observation.columns):
        if frame:
            names = [specs[j].name for j in cols]
            if lik.numeric:
                values = np.column_stack([_float_column(X.iloc[:, j], specs[j].name)
                                          for j in cols])
            else:
                values = X.iloc[:, cols].to_numpy(dtype=object)
        else:
            names = list(cols)
            values = X if observation.whole else X[:, cols]
        if handle_unknown == "error":
            coded = lik.encode(values, names)
        else:
            coded, counts = lik.encode_unseen(values, names)
            unseen.update({specs[j].name: int(n) for j, n in zip(cols, counts) if n})
        if coded is values and not frame:
            continue
        if out is X:
            out = X.copy()
        out[:, cols] = coded
    if unseen and handle_unknown == "warn":
        warn_unseen(unseen)
    return out


# Sparse input is checked against each likelihood's support this many dense
# bytes at a time, where a likelihood's own check needs dense rows.
SPARSE_CHECK_BYTES = 64 * 2**20


def encode_sparse(X, observation):
    """The :class:`~skvae._data.SparseRows` of the validated sparse matrix
    ``X``, checked against each likelihood's support (zeros included).

    A built-in likelihood whose support is a set of values (counts, [0, 1])
    checks the stored values and a zero; a user's is given dense chunks of
    rows. A likelihood that recodes its values (categories) cannot read a
    sparse matrix: a clear error says to pass a dense array.
    """
    rows = SparseRows(X)
    matrix = rows.matrix
    n_rows, n_columns = matrix.shape
    chunk = max(1, SPARSE_CHECK_BYTES // (8 * n_columns))
    for lik, cols in zip(observation.likelihoods, observation.columns):
        names = list(cols)
        if type(lik).encode is not Likelihood.encode:
            raise ValueError(
                f"likelihood {lik.name!r} recodes its values and cannot read a sparse "
                "matrix; pass a dense array (X.toarray()) or a DataFrame.")
        if observation.whole and type(lik).check_support.__module__ == Likelihood.__module__:
            try:  # the stored values, a chunk at a time, and a zero
                for part in [np.zeros(1), *stored_parts(matrix.data)]:
                    lik.check_support(part.reshape(-1, 1), None)
                continue
            except ValueError:
                pass  # found below, with the column named
        for start in range(0, n_rows, chunk):
            block = matrix[start : start + chunk]
            lik.check_support(block[:, cols].toarray() if not observation.whole
                              else block.toarray(), names)
    return rows


def warn_unseen(unseen):
    """A UserWarning that says, for each column named in ``unseen``, how many
    entries held a category not seen in ``fit``, treated as missing."""
    where = ", ".join(f"{n} {'entry' if n == 1 else 'entries'} of column {name!r}"
                      for name, n in unseen.items())
    warn(
        f"Categories not seen in fit, in {where}, were treated as missing entries "
        "(their rows count their other entries). Set handle_unknown='ignore' to "
        "silence this warning, or 'error' to refuse them.",
        UserWarning,
    )


def decode(M, observation, specs, as_frame):
    """Model output (a float matrix) back in the user's types.

    Each likelihood decodes its columns (categories, counts as integers); for a
    DataFrame, booleans come back as booleans and integers rounded and clipped
    to their dtype's range, in a frame with the original columns and dtypes
    when ``as_frame``. An array keeps ``M``'s float dtype unless a column holds
    categories.
    """
    if not as_frame and all(type(lik).decode is Likelihood.decode
                            for lik in observation.likelihoods):
        return M  # every column is its float mean: nothing to decode
    columns = [None] * len(specs)
    for lik, cols in zip(observation.likelihoods, observation.columns):
        for j, column in zip(cols, lik.decode(M[:, cols])):
            columns[j] = _as_dtype(column, specs[j].dtype) if as_frame and lik.numeric else column
    if not as_frame:
        out = np.column_stack(columns)
        return out.astype(M.dtype) if out.dtype.kind in "biuf" else out
    pd = _pandas()
    frame = pd.DataFrame({spec.name: column for spec, column in zip(specs, columns)})
    for spec in specs:
        frame[spec.name] = frame[spec.name].astype(spec.dtype)
    return frame


def _as_dtype(column, dtype):
    """Numbers shaped for a column of ``dtype``: thresholded for booleans,
    rounded for integers and clipped to the integer type's range (a mean or a
    draw beyond it would otherwise wrap around in the cast)."""
    pd = _pandas()
    if pd.api.types.is_bool_dtype(dtype):
        return column >= 0.5
    if pd.api.types.is_integer_dtype(dtype):
        limits = np.iinfo(getattr(dtype, "numpy_dtype", dtype))
        high = np.float64(limits.max)
        if limits.bits == 64:  # 2**63 - 1 and 2**64 - 1 round up to a power of 2
            high = np.nextafter(high, -np.inf)
        return np.clip(np.rint(np.asarray(column, dtype=np.float64)), limits.min, high)
    return column


def describe_columns(observation, specs):
    """What the fitted ``observation`` models in each column of ``specs``: a
    dict from the column's name to its likelihood (a built-in's name, or a
    user's class or factory) and support: the categories for categorical
    columns, else ``(low, high)``, the range its outputs are kept in (see
    :meth:`~skvae._likelihoods.Likelihood.output_range`; infinite where
    unbounded), with ``"whole_numbers"`` telling whether draws are rounded."""
    low, high = observation.support_low.tolist(), observation.support_high.tolist()
    whole = observation.support_integer.tolist()
    summary = {}
    for lik, cols in zip(observation.likelihoods, observation.columns):
        for position, j in enumerate(cols):
            entry = {"likelihood": specs[j].likelihood}
            if hasattr(lik, "low"):  # discrete: codes back to the column's values
                entry["support"] = (lik.low[position], lik.high[position])
                entry["whole_numbers"] = True
            elif hasattr(lik, "categories"):
                entry["support"] = list(lik.categories[position])
            else:
                entry["support"] = (low[j], high[j])
                entry["whole_numbers"] = bool(whole[j])
            summary[specs[j].name] = entry
    return summary


# --------------------------------------------------- inputs that are not tables
# What an input that is not a table of numbers is told to become. Good input
# pays a type test: the strings are looked for only once NumPy has failed to
# read them ("could not convert string to float").

# The strings of an array or a list of rows, by what the estimator wanted of it.
_STRING_ADVICE = {
    "data": "the columns of an array or a list of rows are read as numbers. Pass "
            "a pandas (or polars) DataFrame, whose string columns are modelled as "
            "categorical, or encode the column as numbers (with scikit-learn's "
            "OrdinalEncoder, say).",
    "codes": "inverse_transform decodes latent codes, which are numbers (as "
             "transform returns them).",
}
_STRING_ADVICE["imputer"] = _STRING_ADVICE["data"] + (
    " If {value!r} marks the missing entries, set missing_values={value!r}.")

# What to pass instead of an AnnData, and where the results go.
_MATRIX = "pass its matrix, adata.X, or a layer, such as adata.layers['counts'], and "
_ANNDATA_ADVICE = {
    "data": _MATRIX + "store the codes in adata.obsm, as in "
            "adata.obsm['X_vae'] = vae.fit_transform(adata.X).",
    "codes": "pass the latent codes: store those of transform in adata.obsm, as in "
             "adata.obsm['X_vae'] = vae.transform(adata.X), and decode them with "
             "vae.inverse_transform(adata.obsm['X_vae']).",
    "imputer": _MATRIX + "store the imputed matrix in a layer, as in "
               "adata.layers['imputed'] = imputer.fit_transform(adata.X).",
}

_ARRAY_INTERFACES = ("__array__", "__array_interface__", "__array_struct__",
                     "__dlpack__")


@contextlib.contextmanager
def readable(X, role="data"):
    """Check that ``X`` is something NumPy or a DataFrame library reads (a
    DataFrame with rows and columns), and turn NumPy's failure to read a
    string of ``X`` as a number inside the block into a ValueError that names
    the column and says what to do. ``role`` is what ``X`` should be: "data"
    (rows to model), "codes" (latent codes) or "imputer" (rows to impute)."""
    _check_container(X, role)
    try:
        yield
    except ValueError as exc:
        if "could not convert string to float" not in str(exc):
            raise
        found = _first_string(X)
        if found is None:
            raise
        column, value = found
        where = "X" if column is None else f"Column {column}"
        raise ValueError(f"{where} holds strings such as {value!r}, but "
                         + _STRING_ADVICE[role].format(value=value)) from None


def reads_input(role="data"):
    """Decorate a method ``method(self, X, ...)`` that validates ``X``: it runs
    within :func:`readable` of ``X``."""

    def decorate(method):
        @functools.wraps(method)
        def checked(self, X, *args, **kwargs):
            with readable(X, role):
                return method(self, X, *args, **kwargs)

        return checked

    return decorate


def _check_container(X, role):
    """A TypeError saying what to pass when ``X`` is an AnnData, a string or
    an object with no array or table interface; a ValueError for a DataFrame
    without rows or columns."""
    kind = type(X)
    if any(c.__name__ == "AnnData" and c.__module__.split(".")[0] == "anndata"
           for c in kind.__mro__):
        raise TypeError("X is an AnnData object, which skvae does not read: "
                        + _ANNDATA_ADVICE[role])
    frame = X if is_dataframe(X) else _foreign_frame(X)
    if frame is not None:
        for size, what in zip(frame.shape, ("sample", "feature")):
            if size < 1:
                raise ValueError(f"Found array with 0 {what}(s) (shape={frame.shape}).")
    elif isinstance(X, (str, bytes)) or not (
        X is None or isinstance(X, (Sequence, Number, np.ndarray, np.generic))
        or any(hasattr(X, name) for name in _ARRAY_INTERFACES) or sp.issparse(X)
    ):
        name = kind.__qualname__ if kind.__module__ == "builtins" else (
            f"{kind.__module__}.{kind.__qualname__}")
        raise TypeError(
            f"X is of type {name}, which has no array or table interface: pass a "
            "2-D NumPy array (or anything np.asarray reads as one, such as a list "
            "of rows) or a pandas or polars DataFrame.")


def _first_string(X):
    """``(column, value)`` of the first string in ``X`` that is not a number
    (column None for a 1-D ``X``), or None where there is none to name."""
    try:
        values = np.asarray(X, dtype=object)
    except (TypeError, ValueError):  # ragged rows, say
        return None
    if values.ndim not in (1, 2):
        return None
    columns = values[:, None] if values.ndim == 1 else values
    for j in range(columns.shape[1]):
        try:
            columns[:, j].astype(np.float64)
            continue
        except (TypeError, ValueError):
            pass
        for value in columns[:, j]:
            if isinstance(value, (str, bytes)) and not _is_number(value):
                text = str(value) if isinstance(value, str) else bytes(value)
                return (None if values.ndim == 1 else j), text
    return None


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True
