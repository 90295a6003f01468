"""Tables as users have them: a likelihood per column, and coding to and from numbers.

The torch side sees one float matrix. This module decides each column's likelihood
(:func:`column_specs`), turns the user's array or DataFrame into that matrix
(:func:`encode`: categories become integer codes, booleans 0 and 1) with clear
errors for values a likelihood cannot take, and turns model output back into the
user's types (:func:`decode`).

The automatic rule (``likelihood="auto"``), for DataFrame columns by dtype:

* bool -> ``"bernoulli"``
* category, object or string -> ``"categorical"``
* integer -> ``"negbinom"`` (counts) when the training values lie in
  0..MAX_AUTO_COUNT - 1; other integers (negative values, or large ones such as
  amounts, weights or identifiers, which behave like measurements) ->
  ``"gaussian"``, rounded back to integers on the way out
* float -> ``"gaussian"``

Plain arrays carry no per-column dtypes, so under ``"auto"`` every column of an
array is ``"gaussian"``.
"""

from dataclasses import dataclass

import numpy as np

AUTO = "auto"
MAX_AUTO_COUNT = 1000


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: its name, likelihood, and what is needed to decode it."""

    name: object
    likelihood: str
    dtype: object = None
    categories: tuple = None


def _pandas():
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is needed only for DataFrames
        return None
    return pd


def is_dataframe(X):
    pd = _pandas()
    return pd is not None and isinstance(X, pd.DataFrame)


def _column(X, j):
    return X.iloc[:, j] if is_dataframe(X) else X[:, j]


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
    if pd.api.types.is_integer_dtype(dtype):
        small_counts = column.min() >= 0 and column.max() < MAX_AUTO_COUNT
        return "negbinom" if small_counts else "gaussian"
    if pd.api.types.is_float_dtype(dtype):
        return "gaussian"
    raise ValueError(
        f"Column {name!r} has dtype {dtype}, which fits no likelihood; convert it to a "
        "number, bool or category, or drop it."
    )


def _requested(likelihood, names, known):
    """The likelihood asked for each column: a name, or AUTO."""
    n_features = len(names)
    if isinstance(likelihood, str):
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
    bad = sorted({str(r) for r in requested if r not in known and r != AUTO})
    if bad:
        raise ValueError(f"Unknown likelihood {bad}; choose from {sorted(known)} or 'auto'.")
    return requested


def column_specs(X, likelihood, known):
    """A :class:`ColumnSpec` per column of ``X`` for the ``likelihood`` parameter."""
    frame = is_dataframe(X)
    names = list(X.columns) if frame else list(range(X.shape[1]))
    specs = []
    for j, (name, asked) in enumerate(zip(names, _requested(likelihood, names, known))):
        column = _column(X, j)
        if asked == AUTO:
            asked = _auto_likelihood(column, name) if frame else "gaussian"
        categories = None
        if asked == "categorical":
            categories = tuple(_categories(column, name))
        specs.append(ColumnSpec(name, asked, column.dtype if frame else None, categories))
    return specs


def _categories(column, name):
    pd = _pandas()
    values = pd.Series(column).dropna()
    if values.empty:
        raise ValueError(f"Column {name!r} has no values to learn categories from.")
    try:
        return sorted(values.unique())
    except TypeError:
        return sorted(values.unique(), key=str)


def encode(X, specs):
    """The float matrix the model sees; raises ValueError for values out of support.

    ``X`` is a DataFrame, or an array already validated as float (whose dtype is
    kept).
    """
    if is_dataframe(X):
        out = np.empty((X.shape[0], len(specs)), dtype=np.float64)
        for j, spec in enumerate(specs):
            out[:, j] = _encode_column(X.iloc[:, j], spec)
        return out
    out = X
    for likelihood, columns in group_columns(specs).items():
        if likelihood == "categorical":
            out = out.copy() if out is X else out
            for j in columns:
                out[:, j] = _encode_column(X[:, j], specs[j])
        elif likelihood != "gaussian":
            _check_support(X[:, columns], likelihood, "X")
    return out


def group_columns(specs):
    """Column indices by likelihood name, in order of first appearance."""
    groups = {}
    for j, spec in enumerate(specs):
        groups.setdefault(spec.likelihood, []).append(j)
    return groups


def _check_support(values, likelihood, where):
    if likelihood in ("poisson", "negbinom"):
        if (values < 0).any() or (values != np.round(values)).any():
            raise ValueError(
                f"{where} has negative or fractional values, but "
                f"likelihood={likelihood!r} is for counts (non-negative integers)."
            )
    if likelihood == "bernoulli" and values.size and (values.min() < 0 or values.max() > 1):
        raise ValueError(
            f"likelihood='bernoulli' needs values in [0, 1]; {where} has values in "
            f"[{values.min():g}, {values.max():g}]. Scale the data to [0, 1] (for "
            "example with MinMaxScaler) or use likelihood='gaussian'."
        )


def _encode_column(column, spec):
    pd = _pandas()
    name = spec.name
    if spec.likelihood == "categorical":
        values = pd.Series(np.asarray(column, dtype=object))
        if values.isna().any():
            raise ValueError(f"Column {name!r} contains missing values (NaN or None).")
        codes = pd.Index(spec.categories).get_indexer(values)
        if (codes < 0).any():
            unseen = sorted({str(v) for v in values[codes < 0]})[:5]
            raise ValueError(
                f"Column {name!r} has categories not seen in fit: {unseen}. Refit on data "
                "that includes them, or map them to a known category."
            )
        return codes
    try:
        values = np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Column {name!r} holds values that are not numbers, which "
            f"likelihood={spec.likelihood!r} needs: {exc}"
        ) from None
    if not np.isfinite(values).all():
        raise ValueError(f"Column {name!r} contains NaN or infinity.")
    _check_support(values, spec.likelihood, f"column {name!r}")
    return values


def decode(M, specs, as_frame):
    """Model output (a float matrix) back in the user's types.

    Categories come back as the categories seen in fit, counts as non-negative
    integers, booleans as booleans; a DataFrame with the original columns and
    dtypes when ``as_frame``.
    """
    if not as_frame and all(spec.categories is None for spec in specs):
        return M
    columns = {}
    for j, spec in enumerate(specs):
        column = M[:, j]
        if spec.categories is not None:
            categories = np.asarray(spec.categories, dtype=object if as_frame else None)
            column = categories[np.rint(column).astype(int)]
        elif spec.likelihood in ("poisson", "negbinom"):
            column = np.maximum(np.rint(column), 0).astype(np.int64)
        elif spec.likelihood == "bernoulli" and as_frame and _pandas().api.types.is_bool_dtype(spec.dtype):
            column = column >= 0.5
        elif as_frame and _pandas().api.types.is_integer_dtype(spec.dtype):
            column = np.rint(column)
        columns[spec.name] = column
    if not as_frame:
        return np.column_stack(list(columns.values()))
    pd = _pandas()
    frame = pd.DataFrame(columns)
    for spec in specs:
        frame[spec.name] = frame[spec.name].astype(spec.dtype)
    return frame
