"""Inference on Dask: a fitted estimator's methods over a dask collection, lazily.

Each function takes a fitted :class:`~skvae.VAETransformer` and a dask array or
dask DataFrame and returns a lazy dask collection with the right shape, dtype
and metadata, computed block by block (on a cluster's workers, under a
``distributed.Client``). The estimator enters the task graph once, not once per
block. Needs ``dask`` (``pip install "skvae[dask]"``).

>>> import dask.array as da, numpy as np
>>> from skvae import VAETransformer
>>> from skvae import dask as skvae_dask
>>> X = np.random.RandomState(0).normal(size=(200, 5))
>>> vae = VAETransformer(max_iter=5, random_state=0).fit(X)
>>> Z = skvae_dask.transform(vae, da.from_array(X, chunks=50))
>>> Z.shape, Z.chunks[0]
((200, 2), (50, 50, 50, 50))
>>> bool(np.allclose(Z.compute(), vae.transform(X)))
True
"""


import numpy as np
from sklearn.utils.validation import check_is_fitted, check_random_state

from ._covariates import given_rows
from ._data import MAX_SEED, is_positive_integer
from ._estimator import column_names, pandas_output

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - dask is optional
    raise ImportError(
        "skvae.dask needs dask: pip install 'skvae[dask]' (or 'dask[distributed]')."
    ) from exc

__all__ = ["inverse_transform", "sample", "score_samples", "transform"]


def _dd():
    """dask.dataframe, imported when a DataFrame is involved (it needs pyarrow)."""
    import dask.dataframe as dd

    return dd


def _is_frame(X):
    return type(X).__module__.startswith("dask.dataframe")


def _check(estimator, X):
    check_is_fitted(estimator)
    if not (isinstance(X, da.Array) or (_is_frame(X) and isinstance(X, _dd().DataFrame))):
        raise TypeError(
            f"expected a dask array or dask DataFrame; got {type(X).__name__}. "
            "Call the estimator's own method on in-memory data."
        )
    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D dask array; got {X.ndim} dimensions.")
        # Whole rows in each block (already so for a single column block, whose
        # width may be unknown, as from_delayed's can be).
        return X if X.numblocks[1] == 1 else X.rechunk({1: -1})
    return X


def _check_columns(estimator, X):
    """The checks of the estimator's own validation that need only the
    columns, made here: otherwise they fail on a worker, when computed."""
    names = getattr(estimator, "feature_names_in_", None)
    # Columns not all named by strings are left to scikit-learn, which warns.
    named = _is_frame(X) and all(isinstance(column, str) for column in X.columns)
    if named and names is not None and list(X.columns) != list(names):
        raise ValueError(
            f"X has the columns {list(X.columns)}, but {type(estimator).__name__} "
            f"was fitted on the columns {list(names)}, in that order."
        )
    width = len(X.columns) if _is_frame(X) else X.shape[1]
    if not np.isnan(width) and width != estimator.n_features_in_:  # nan: unknown
        raise ValueError(
            f"X has {width} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )


def _out_dtype(X):
    """Our methods compute in float32 for float32 input (a DataFrame's columns
    all float32), else in float64."""
    dtypes = list(X.dtypes) if _is_frame(X) else [X.dtype]
    return np.float32 if all(dtype == np.float32 for dtype in dtypes) else np.float64


def transform(estimator, X):
    """Lazy ``estimator.transform(X)``: posterior means of the latent codes.

    Parameters
    ----------
    estimator : VAETransformer
        A fitted estimator.
    X : dask.array.Array or dask.dataframe.DataFrame
        Rows to encode, with the columns ``estimator`` was fitted on.

    Returns
    -------
    Z : dask.array.Array of shape (n_samples, n_components_), or dask DataFrame
        A dask array for array input (float32 for float32 input, else
        float64); for a DataFrame a dask DataFrame whose columns are
        ``estimator.get_feature_names_out()``, partitioned as ``X``.
    """
    X = _check(estimator, X)
    _check_columns(estimator, X)
    model = dask.delayed(estimator, pure=True)
    k = estimator.n_components_
    if _is_frame(X):
        names = list(estimator.get_feature_names_out())
        meta = _empty_frame(names, np.float64)
        return X.map_partitions(_frame_rows("transform", names), model, meta=meta)
    dtype = _out_dtype(X)
    return X.map_blocks(_block("transform", dtype), model, dtype=dtype,
                        chunks=(X.chunks[0], (k,)))


def score_samples(estimator, X, n_importance_samples=None):
    """Lazy ``estimator.score_samples(X)``: the log-likelihood bound of each row.

    Parameters
    ----------
    estimator : VAETransformer
        A fitted estimator.
    X : dask.array.Array or dask.dataframe.DataFrame
        Rows to score.
    n_importance_samples : int, default=None
        As in :meth:`VAETransformer.score_samples`.

    Returns
    -------
    log_likelihood : dask.array.Array of shape (n_samples,), or dask Series
        float64, a dask Series for DataFrame input.
    """
    X = _check(estimator, X)
    _check_columns(estimator, X)
    n_draws = n_importance_samples
    if n_draws is not None and not is_positive_integer(n_draws):
        raise ValueError(
            f"n_importance_samples must be a positive integer; got {n_draws!r}."
        )
    model = dask.delayed(estimator, pure=True)
    if _is_frame(X):
        def score(part, est):
            import pandas as pd

            values = est.score_samples(part, n_importance_samples) if len(part) else []
            return pd.Series(values, index=part.index, dtype=np.float64, name="score")

        meta = _empty_series("score")
        return X.map_partitions(score, model, meta=meta)

    def score(block, est):
        if block.shape[0] == 0:
            return np.zeros(0)
        return est.score_samples(block, n_importance_samples)

    return X.map_blocks(score, model, dtype=np.float64, drop_axis=1, chunks=(X.chunks[0],))


def inverse_transform(estimator, Z, covariates=None):
    """Lazy ``estimator.inverse_transform(Z)``: decoded rows in feature space.

    Parameters
    ----------
    estimator : VAETransformer
        A fitted estimator.
    Z : dask.array.Array or dask.dataframe.DataFrame of shape (n_samples, n_components_)
        Latent codes, such as the output of :func:`transform`.
    covariates : dict, dask array or dask DataFrame, default=None
        For a model fitted with ``covariates``, their values to decode under
        (required): a dict of one value for each covariate, applied to every
        row; or the covariate columns, one row per code, as a dask array (in
        the order of the covariates) or a dask DataFrame holding them, in
        blocks aligned with ``Z``'s (the same number of rows in each: a dask
        array is rechunked to ``Z``'s row blocks when they are known).

    Returns
    -------
    X : dask.array.Array, or dask DataFrame
        A dask array for a model fitted on an array; a dask DataFrame with
        the original columns and dtypes for one fitted on a DataFrame,
        partitioned and indexed as ``Z`` when that is a dask DataFrame (of
        pandas partitions, whatever the DataFrame library of ``fit``: a
        polars Enum column comes back as a pandas categorical).
    """
    Z = _check(estimator, Z)
    width = len(Z.columns) if _is_frame(Z) else Z.shape[1]
    if width != estimator.n_components_:
        raise ValueError(
            f"Z has {width} columns, but inverse_transform expects latent codes "
            f"with n_components={estimator.n_components_} columns."
        )
    estimator = pandas_output(estimator)
    model = dask.delayed(estimator, pure=True)
    lazy = covariates is not None and not isinstance(covariates, dict)
    fixed = None if lazy else _scalar_covariates(estimator, covariates, "inverse_transform")
    meta = estimator.inverse_transform(np.zeros((1, width), dtype=_out_dtype(Z)),
                                       covariates=_example(estimator, fixed))
    if lazy:
        return _decode_with(model, Z, covariates, meta)
    if hasattr(meta, "iloc"):  # fitted on a DataFrame
        if not _is_frame(Z):
            Z = _dd().from_dask_array(Z, columns=[f"z{i}" for i in range(width)])
        # A DataFrame of codes keeps its partitions and index (those of the rows
        # it encodes), and its row counts need not be known: nothing is
        # computed before the result is.
        return Z.map_partitions(_decoded_rows(meta.iloc[:0], fixed), model,
                                meta=meta.iloc[:0])
    if _is_frame(Z):
        Z = Z.to_dask_array()  # row counts unknown, rather than computed here
    return Z.map_blocks(_block("inverse_transform", meta.dtype, fixed), model,
                        dtype=meta.dtype, chunks=(Z.chunks[0], (meta.shape[1],)))


def _covariate_names(estimator):
    """The covariate columns' names (positions for an array), in order."""
    names = column_names(estimator)
    return [names[j] for j in estimator.module_.observation.covariate_columns]


def _scalar_covariates(estimator, covariates, what):
    """``covariates``, a dict of one value per covariate (or None), checked
    here rather than on a worker: the estimator's own errors for a missing or
    unknown covariate, and one for per-row values, which need a dask
    collection aligned with the rows."""
    names = _covariate_names(estimator)
    if covariates is None:
        if names and what == "inverse_transform":
            given_rows(estimator.module_.observation, column_names(estimator), None, 1, what)
        return None
    for name, value in covariates.items():
        if np.ndim(value) != 0:
            raise ValueError(
                f"skvae.dask.{what}: covariates[{name!r}] has several values; a dict "
                "gives one value for every row. Give per-row values as a dask array or "
                "DataFrame of the covariate columns aligned with the rows.")
    given_rows(estimator.module_.observation, column_names(estimator), covariates, 1, what)
    return covariates


def _example(estimator, covariates):
    """Covariate values for computing one row of metadata: ``covariates``,
    or for a model with covariates a training row's (None without)."""
    names = _covariate_names(estimator)
    if covariates is not None or not names:
        return covariates
    row = estimator.sample(1, random_state=0, noise=False)
    if hasattr(row, "iloc"):
        return row[names]
    return {name: row[0, name] for name in names}


def _decode_with(model, Z, covariates, meta):
    """``inverse_transform`` of the blocks of ``Z`` under the covariate values
    of the aligned blocks of the dask collection ``covariates``."""
    codes = _blocks(Z)
    if isinstance(covariates, da.Array) and not _is_frame(Z) and covariates.ndim == 2:
        covariates = covariates.rechunk({0: Z.chunks[0], 1: -1})
    elif isinstance(covariates, da.Array):
        covariates = covariates.rechunk({1: -1}) if covariates.ndim == 2 else covariates
    elif not (_is_frame(covariates) and isinstance(covariates, _dd().DataFrame)):
        raise TypeError(
            f"covariates must be a dict of one value per covariate, a dask array or a "
            f"dask DataFrame; got {type(covariates).__name__}.")
    values = _blocks(covariates)
    if len(values) != len(codes):
        raise ValueError(
            f"covariates has {len(values)} blocks, but Z has {len(codes)}: give the "
            "covariate values in blocks aligned with Z's rows.")
    empty = meta.iloc[:0] if hasattr(meta, "iloc") else meta[:0]
    # Rows of an array of codes numbered across its blocks, as in one call.
    sizes = [np.nan] * len(codes) if _is_frame(Z) else list(Z.chunks[0])
    starts = np.cumsum([0] + sizes[:-1]).tolist()
    blocks = [dask.delayed(_decode_block, pure=True)(model, z, c, empty, start)
              for z, c, start in zip(codes, values, starts)]
    if hasattr(meta, "iloc"):
        divisions = Z.divisions if _is_frame(Z) else None
        if not _is_frame(Z) and not np.isnan(sum(sizes)) and sum(sizes) > 0:
            divisions = tuple(int(v) for v in starts) + (int(sum(sizes)) - 1,)
            divisions = divisions if all(sizes) else None
        with dask.config.set({"dataframe.convert-string": False}):
            return _dd().from_delayed(blocks, meta=empty, divisions=divisions)
    return da.concatenate([da.from_delayed(block, shape=(size, meta.shape[1]), dtype=meta.dtype)
                           for block, size in zip(blocks, sizes)])


def _blocks(collection):
    """The row blocks of a dask array (its columns in one block) or the
    partitions of a dask DataFrame, as delayed objects."""
    if _is_frame(collection):
        return list(collection.to_delayed())
    if collection.ndim == 2 and collection.numblocks[1] != 1:
        collection = collection.rechunk({1: -1})
    return list(np.asarray(collection.to_delayed()).ravel())


def _decode_block(estimator, codes, covariates, empty, start):
    """One block's decoded rows, indexed as a DataFrame block of codes, or
    numbered from ``start`` (when known) for a block of an array."""
    if len(codes) == 0:
        framed = hasattr(empty, "iloc") and hasattr(codes, "index")
        return empty.set_axis(codes.index) if framed else empty
    rows = estimator.inverse_transform(np.asarray(codes), covariates=covariates)
    if hasattr(rows, "iloc") and hasattr(codes, "index"):
        rows = rows.set_axis(codes.index)
    elif hasattr(rows, "iloc") and not np.isnan(start):
        rows.index = rows.index + int(start)
    return rows


def sample(estimator, n_samples, chunks=100_000, random_state=None, *, noise=True,
           covariates=None):
    """Lazy ``estimator.sample``: ``n_samples`` new rows, drawn block by block.

    Parameters
    ----------
    estimator : VAETransformer
        A fitted estimator.
    n_samples : int
        Number of rows to draw.
    chunks : int, default=100_000
        Rows per block.
    random_state : int, RandomState instance or None, default=None
        Seeds the blocks' draws (one seed per block, drawn from it); an int
        makes the result reproducible, whatever computes it.
    noise : bool, default=True
        Draw the rows from the likelihood (True) or return the decoder's mean
        at the drawn codes (False), as in :meth:`VAETransformer.sample`.
    covariates : dict, default=None
        For a model fitted with ``covariates``, one value for each covariate,
        which every row carries (see :meth:`VAETransformer.sample`). None
        draws them, row by row, from the training rows' values, from each
        block's seed: reproducible as the rest of the draw.

    Returns
    -------
    X_new : dask.array.Array of shape (n_samples, n_features_in_), or dask DataFrame
        float64 rows; a dask DataFrame with the original columns and dtypes
        for a model fitted on a DataFrame (of pandas partitions, as for
        :func:`inverse_transform`).
    """
    check_is_fitted(estimator)
    if not is_positive_integer(n_samples):
        raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
    if not is_positive_integer(chunks):
        raise ValueError(f"chunks must be a positive integer; got {chunks!r}.")
    sizes = [min(chunks, n_samples - start) for start in range(0, n_samples, chunks)]
    seeds = check_random_state(random_state).randint(MAX_SEED, size=len(sizes))
    if covariates is not None and not isinstance(covariates, dict):
        raise TypeError("skvae.dask.sample: covariates must be a dict of one value for "
                        f"each covariate; got {type(covariates).__name__}.")
    covariates = _scalar_covariates(estimator, covariates, "sample")
    estimator = pandas_output(estimator)
    model = dask.delayed(estimator, pure=True)
    meta = estimator.sample(1, random_state=0, noise=noise, covariates=covariates)
    starts = np.cumsum([0] + sizes[:-1]).tolist()
    blocks = [dask.delayed(_draw, pure=True)(model, size, int(seed), noise, start, covariates)
              for size, seed, start in zip(sizes, seeds, starts)]
    if hasattr(meta, "iloc"):
        # Rows numbered 0 to n_samples - 1 across the blocks, as in a single sample.
        divisions = tuple(starts) + (n_samples - 1,)
        # The dtypes of fit, as inverse_transform keeps them: not dask's default
        # conversion of object columns to pyarrow strings.
        with dask.config.set({"dataframe.convert-string": False}):
            return _dd().from_delayed(blocks, meta=meta.iloc[:0], divisions=divisions)
    return da.concatenate([
        da.from_delayed(block, shape=(size, meta.shape[1]), dtype=meta.dtype)
        for block, size in zip(blocks, sizes)
    ])


def _draw(estimator, size, seed, noise=True, start=0, covariates=None):
    rows = estimator.sample(size, random_state=seed, noise=noise, covariates=covariates)
    if hasattr(rows, "index"):  # a DataFrame block: its rows' numbers in the whole
        rows.index = rows.index + start
    return rows


def _block(method, dtype, covariates=None):
    def apply(block, est):
        if block.shape[0] == 0:  # the estimator refuses no rows
            width = est.n_components_ if method == "transform" else est.n_features_in_
            return np.zeros((0, width), dtype=dtype)
        if covariates is not None:
            return getattr(est, method)(block, covariates=covariates)
        return getattr(est, method)(block)

    return apply


def _decoded_rows(empty, covariates=None):
    """``inverse_transform`` of a partition of codes (under the covariate
    values ``covariates``), as a DataFrame like ``empty`` with the
    partition's index."""
    def apply(part, est):
        if len(part) == 0:  # the estimator refuses no rows
            return empty.set_axis(part.index)
        return est.inverse_transform(part.to_numpy(), covariates=covariates).set_axis(
            part.index)

    return apply


def _frame_rows(method, names):
    def apply(part, est):
        import pandas as pd

        if len(part) == 0:
            return _empty_frame(names, np.float64).set_axis(part.index)
        return pd.DataFrame(np.asarray(getattr(est, method)(part)), index=part.index,
                            columns=names)

    return apply


def _empty_frame(names, dtype):
    import pandas as pd

    return pd.DataFrame({name: np.zeros(0, dtype=dtype) for name in names})


def _empty_series(name):
    import pandas as pd

    return pd.Series(np.zeros(0), dtype=np.float64, name=name)
