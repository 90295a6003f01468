"""VAEImputer: missing values filled in from a VAE fitted on the incomplete data."""

import math
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.impute import MissingIndicator
from sklearn.utils._param_validation import Interval
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import (
    _check_feature_names_in,
    check_is_fitted,
    check_random_state,
    validate_data,
)

from ._data import (
    MAX_SEED,
    batch_slices,
    eval_rows,
    evaluation_noise,
    make_generator,
    to_tensor,
)
from ._distributed import collective
from ._elbo import standard_normal_log_prob
from ._estimator import (
    VAETransformer,
    coded_rows,
    decoded_rows,
    inference_module,
)
from ._likelihoods import observed
from ._repr import DocLinkMixin
from ._tables import as_pandas, enum_categories, from_pandas, is_dataframe, readable
from ._warn import warn


class VAEImputer(TransformerMixin, DocLinkMixin, BaseEstimator):
    """Impute missing values with a variational autoencoder.

    A :class:`VAETransformer` is fitted on the incomplete data (each row's
    likelihood is that of its observed entries; the encoder sees which entries
    are observed). Each missing entry is then filled with its conditional mean
    given the row's observed entries, estimated by importance weighting over
    latent draws from the encoder (as in MIWAE, Mattei and Frellsen 2019), or,
    with ``sample_posterior=True``, with a draw from that conditional
    distribution. Mixed DataFrames come back with their dtypes and categories.
    A category not seen in ``fit`` is imputed as a missing entry, with a
    warning, under the estimator's ``handle_unknown="warn"`` (silently with
    ``"ignore"``; ``"error"`` refuses it).

    Parameters
    ----------
    estimator : VAETransformer, default=None
        The model (unfitted; it is cloned). None gives
        ``VAETransformer(n_components=10)``: imputation needs a richer code than
        a two-dimensional map, and the KL term leaves unneeded dimensions unused.
    missing_values : int, float, str, np.nan or None, default=np.nan
        The placeholder for missing values; entries equal to it are imputed
        (in DataFrames also ``None`` and ``pd.NA``). In a DataFrame, an
        integer or bool column holding it is modelled as the nullable
        (``Int64``, ``boolean``, ...) column with those entries missing, and
        comes back in its own dtype.
    n_importance_samples : int, default=64
        Latent draws per row for the conditional mean.
    sample_posterior : bool, default=False
        Fill each missing entry with a draw from its conditional distribution
        (one latent draw picked by its importance weight, then a draw of the
        entry) instead of the conditional mean: for multiple imputation, call
        ``transform`` with different ``random_state``.
    add_indicator : bool, default=False
        Append a :class:`~sklearn.impute.MissingIndicator`'s columns. A
        DataFrame whose column labels are not all strings then comes back with
        the columns named by :meth:`get_feature_names_out` (``x0``, ...,
        ``missingindicator_x0``, ...).
    keep_empty_features : bool, default=False
        Keep columns with no observed value in ``fit``; ``transform`` fills
        their missing entries with a constant and keeps their observed ones,
        as scikit-learn's imputers do. Otherwise they are dropped. An array's
        are filled with 0. A DataFrame's keep their
        dtype: a number column (float, integer, nullable or not) is filled
        with 0, a bool column with False, a categorical one with its first
        category (with the category ``""`` when it has none) and a string or
        object column with ``""``. ``fit`` raises a ValueError for an empty
        column of another dtype (a date, say).
    random_state : int, RandomState instance or None, default=None
        Seeds the model (when its own ``random_state`` is None) and the latent
        draws; an int makes ``fit`` and ``transform`` reproducible.

    Attributes
    ----------
    estimator_ : VAETransformer
        The fitted model (on the non-empty columns).
    indicator_ : MissingIndicator or None
        The indicator, with ``add_indicator``.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit``, when they are all strings.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae import VAEImputer, VAETransformer
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 5))
    >>> X[rng.uniform(size=X.shape) < 0.2] = np.nan
    >>> imputer = VAEImputer(VAETransformer(max_iter=20), random_state=0)
    >>> X_filled = imputer.fit_transform(X)
    >>> bool(np.isnan(X_filled).any())
    False
    """

    _parameter_constraints = {
        # Imputation reads the fitted VAE's encoder and likelihoods: another
        # transformer would fail only after its fit, on a missing attribute.
        "estimator": [VAETransformer, None],
        "missing_values": [Integral, float, str, None],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "sample_posterior": ["boolean"],
        "add_indicator": ["boolean"],
        "keep_empty_features": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(self, estimator=None, *, missing_values=np.nan, n_importance_samples=64,
                 sample_posterior=False, add_indicator=False, keep_empty_features=False,
                 random_state=None):
        self.estimator = estimator
        self.missing_values = missing_values
        self.n_importance_samples = n_importance_samples
        self.sample_posterior = sample_posterior
        self.add_indicator = add_indicator
        self.keep_empty_features = keep_empty_features
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the model on the incomplete ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Data with missing entries.
        y : None
            Ignored.

        Returns
        -------
        self : VAEImputer
        """
        X, _ = as_pandas(X)  # a polars (or other) DataFrame is read as pandas
        X = self._check(X, reset=True)
        estimator = clone(self.estimator if self.estimator is not None
                          else VAETransformer(n_components=10))
        # With VAETransformer(distributed=True), every rank fits on its shard:
        # which columns are empty, or have missing entries, is decided over all.
        group = collective(bool(estimator.get_params().get("distributed", False)))
        missing = self._missing(X)
        *n_missing, n_rows = group.sum(
            missing.sum(axis=0).astype(float).tolist() + [float(len(X))])
        self._empty = np.asarray(n_missing) == n_rows
        self._empty_fills = None
        if self._empty.any() and not self.keep_empty_features:
            warn(
                f"Skipping features without any observed values: "
                f"{list(self._names()[self._empty])}. They are dropped from the output; "
                "keep_empty_features=True keeps them, filled with a constant (0 for "
                "numbers).",
                UserWarning,
            )
        elif self._empty.any() and is_dataframe(X):
            self._empty_fills = {
                int(j): _empty_fill(X.iloc[:, j]) for j in np.flatnonzero(self._empty)
            }
        rng = check_random_state(self.random_state)
        self._seed = int(rng.randint(MAX_SEED))
        if estimator.get_params().get("random_state") is None and self.random_state is not None:
            estimator.set_params(random_state=int(rng.randint(MAX_SEED)))
        self.estimator_ = estimator.fit(self._kept(self._as_nan(X, missing)))
        self.indicator_ = None
        if self.add_indicator:
            self.indicator_ = MissingIndicator(missing_values=np.nan, error_on_new=False)
            # (one row with a NaN in each column that has a missing entry on some rank)
            self.indicator_.fit(_nan_where(missing) if not group.distributed
                                else _nan_where(np.asarray(n_missing)[None, :] > 0))
        return self

    def transform(self, X, random_state=None):
        """Fill the missing entries of ``X``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
            Data with missing entries.
        random_state : int, RandomState instance or None, default=None
            Seeds the latent draws (and, with ``sample_posterior``, the
            imputed draws); None uses the seed drawn in ``fit``, so that
            ``transform`` is deterministic.

        Returns
        -------
        X_imputed : ndarray or DataFrame
            ``X`` with its missing entries filled, without the columns empty in
            ``fit`` (unless ``keep_empty_features``), followed by the indicator
            columns with ``add_indicator``; a DataFrame with the original
            dtypes for DataFrame input.
        """
        check_is_fitted(self)
        enums = enum_categories(X)
        X, library = as_pandas(X)
        X = self._check(X, reset=False)
        missing = self._missing(X)
        kept = self._kept(self._as_nan(X, missing))
        vae = self.estimator_
        M = coded_rows(vae, kept)
        seed = self._seed if random_state is None else int(
            check_random_state(random_state).randint(MAX_SEED))
        filled = self._impute(M, seed)
        out = decoded_rows(vae, filled)
        if is_dataframe(out) and is_dataframe(X):
            out = _with_dtypes_of(out, self._kept(X))
        out = self._with_empty(out, X, missing)
        if is_dataframe(out) and is_dataframe(X):
            out.index = X.index  # the input's row labels, as scikit-learn's imputers keep
        if self.indicator_ is not None:
            out = _concatenate(out, self.indicator_.transform(_nan_where(missing)),
                               self.indicator_.get_feature_names_out(self._names()))
            if is_dataframe(out) and not hasattr(self, "feature_names_in_"):
                # Labels that are not all strings, followed by the indicator's
                # string names, would be refused by the next scikit-learn step.
                out.columns = self.get_feature_names_out()
        # In the input's DataFrame library, unless set_output asks for another
        # (converted here, with the columns' dtypes, not by scikit-learn's wrapper).
        asked = _get_output_config("transform", self)["dense"]
        return from_pandas(out, library if asked == "default" else asked, enums)

    def _impute(self, M, seed):
        """``M`` (the model's float matrix) with its NaN entries imputed."""
        vae = self.estimator_
        dtype = torch.float32 if M.dtype == np.float32 else torch.float64
        module, device = inference_module(vae, dtype)
        generator = make_generator(seed, device)
        # The same latent draws (standard normal, scrambled Sobol) for every
        # row: a row's conditional mean does not depend on the others in X.
        # (With sample_posterior the draws come from one stream over the rows,
        # so a row's draw does depend on the rows before it.)
        shared = evaluation_noise(self.n_importance_samples, module.n_components, seed)
        shared = shared.to(device, dtype)
        x_all = to_tensor(M, "cpu", dtype)
        k = self.n_importance_samples
        parts = []
        with torch.no_grad():
            for rows in batch_slices(len(M), eval_rows(k, M.shape[1])):
                x = x_all[rows].to(device)
                mask = observed(x)
                if mask.all():
                    parts.append(x.cpu())
                    continue
                fill = self._fill(module, x, mask, shared, generator)
                parts.append(torch.where(mask, x, fill).cpu())
        return torch.cat(parts).numpy() if parts else M

    def _fill(self, module, x, mask, noise, generator):
        """Imputations of every entry of ``x`` from its observed entries;
        ``noise``: standard normal draws, shape (K, 1, n_components)."""
        mean, log_var = module.encode(x, mask)
        std = (0.5 * log_var).exp()
        z = mean + std * noise
        params = module.decode(z, module.conditions(x))
        log_q = standard_normal_log_prob(noise) - log_var.sum(-1) / 2  # log q(z | x)
        log_w = module.observation.log_prob(params, x, mask) + standard_normal_log_prob(z) - log_q
        weights = torch.softmax(log_w, dim=0)  # (k, batch)
        if not self.sample_posterior:
            return module.observation.impute(params, weights, self.estimator_.bound_outputs)
        pick = torch.multinomial(weights.T, 1, generator=generator).squeeze(-1)
        chosen = params[pick, torch.arange(x.shape[0], device=x.device)]
        return module.observation.sample(chosen, generator, self.estimator_.bound_outputs)

    # ----------------------------------------------------------------- helpers

    def _check(self, X, reset):
        if is_dataframe(X):
            validate_data(self, X, reset=reset, skip_check_array=True)
            return X
        with readable(X, role="imputer"):
            return validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=False)

    def _missing(self, X):
        """Boolean mask of the entries equal to ``missing_values`` (and, in
        DataFrames and float arrays, NaN, None and pd.NA)."""
        if is_dataframe(X):
            mask = X.isna().to_numpy()
            if not _is_nan(self.missing_values):
                # (a nullable column compares to pd.NA where it holds pd.NA)
                mask |= (X == self.missing_values).to_numpy(dtype=bool, na_value=False)
            return mask
        values = np.asarray(X)
        if _is_nan(self.missing_values):
            return _isnan(values)
        return (values == self.missing_values) | _isnan(values)

    def _as_nan(self, X, missing):
        """``X`` with its missing entries as NaN (not modifying the caller's).

        In a DataFrame, an integer or bool column with missing entries becomes
        the nullable column (``Int64``, ``boolean``, ...) with ``pd.NA`` there,
        as it would be modelled had they been ``pd.NA``; a float array keeps
        its dtype.
        """
        if is_dataframe(X):
            if not missing.any():
                return X
            out = X.copy(deep=False)
            for j in np.flatnonzero(missing.any(axis=0)):
                column = X.iloc[:, j]
                if _is_numpy_integer(column.dtype):
                    column = column.astype(_nullable(column.dtype))
                out.isetitem(j, column.mask(missing[:, j]))
            return out
        values = np.asarray(X)
        floating = values.dtype.kind == "f"
        if not missing.any() and floating:
            return X
        if values.dtype.kind in "OUS":  # a string placeholder is no number to read
            values = np.where(missing, None, values.astype(object))
        with readable(values, role="imputer"):
            out = np.array(values, dtype=values.dtype if floating else np.float64)
        out[missing] = np.nan
        return out

    def _kept(self, X):
        if not self._empty.any():
            return X
        keep = np.flatnonzero(~self._empty)
        return X.iloc[:, keep] if is_dataframe(X) else X[:, keep]

    def _with_empty(self, out, X, missing):
        """Put back the columns that were empty in fit, with
        ``keep_empty_features``: their values in ``X`` where observed, and where
        missing (``missing``) zeros in an array, in a DataFrame the fill ``fit``
        chose (see :func:`_empty_fill`), in the column's dtype."""
        if not (self.keep_empty_features and self._empty.any()):
            return out
        if is_dataframe(out):
            import pandas as pd

            kept = iter(range(out.shape[1]))
            columns, names = [], []
            for j in range(len(self._empty)):
                if j in self._empty_fills:
                    name, value, dtype = self._empty_fills[j]
                    column = pd.Series(value, index=out.index, dtype=dtype)
                    seen = ~missing[:, j]
                    if seen.any():
                        try:
                            column[seen] = (X.iloc[seen, j].to_numpy() if is_dataframe(X)
                                            else np.asarray(X)[seen, j])
                        except (TypeError, ValueError) as exc:
                            raise ValueError(
                                f"Column {name!r} was empty in fit and holds values "
                                f"that do not fit its dtype {dtype} in transform: {exc}"
                            ) from None
                    columns.append(column)
                else:
                    k = next(kept)
                    name = out.columns[k]
                    columns.append(out.iloc[:, k])
                names.append(name)
            full = pd.concat(columns, axis=1, ignore_index=True)
            full.columns = pd.Index(names)
            return full
        full = np.zeros((out.shape[0], len(self._empty)), dtype=out.dtype)
        full[:, ~self._empty] = out
        empty = np.flatnonzero(self._empty)
        observed = ~missing[:, empty]
        full[:, empty] = np.where(observed, np.asarray(X)[:, empty], 0).astype(out.dtype)
        return full

    def _names(self):
        if hasattr(self, "feature_names_in_"):
            return np.asarray(self.feature_names_in_, dtype=object)
        return np.asarray([f"x{i}" for i in range(self.n_features_in_)], dtype=object)

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Input names; ``feature_names_in_`` (or ``x0, x1, ...``) when None.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        check_is_fitted(self)
        # Checked against the fit's number of features and names, as
        # scikit-learn's transformers do (a wrong length failed on an index).
        names = _check_feature_names_in(self, input_features)
        kept = names if self.keep_empty_features else names[~self._empty]
        if self.indicator_ is None:
            return kept
        return np.concatenate([kept, self.indicator_.get_feature_names_out(names)])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        # A float32 array is imputed in float32 (the model computes in it).
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _is_nan(value):
    return isinstance(value, float) and math.isnan(value)


def _isnan(values):
    if values.dtype.kind in "fc":
        return np.isnan(values)
    if values.dtype.kind == "O":
        import pandas as pd

        return pd.isna(values)
    return np.zeros(values.shape, dtype=bool)


def _is_numpy_integer(dtype):
    """Whether ``dtype`` is a NumPy integer or bool dtype (which cannot hold a
    missing value)."""
    return isinstance(dtype, np.dtype) and dtype.kind in "biu"


def _nullable(dtype):
    """The pandas nullable dtype of a NumPy integer or bool ``dtype``
    (``int64``: ``Int64``, ``uint8``: ``UInt8``, ``bool``: ``boolean``)."""
    import pandas as pd

    return pd.array(np.empty(0, dtype=dtype)).dtype


def _with_dtypes_of(out, X):
    """``out`` with the NumPy integer and bool dtypes of ``X``'s columns where
    it holds their nullable counterparts (``_as_nan`` made them nullable to
    mask placeholders; ``out`` has no missing entry left)."""
    for j, dtype in enumerate(X.dtypes):
        if _is_numpy_integer(dtype) and out.dtypes.iloc[j] == _nullable(dtype):
            out.isetitem(j, out.iloc[:, j].astype(dtype))
    return out


def _empty_fill(column):
    """``(name, value, dtype)`` for a column that is empty in ``fit``, kept
    with ``keep_empty_features``: 0 (False for bools) for numbers, the first
    category for categories, ``""`` for strings and objects, in the column's
    dtype."""
    import pandas as pd

    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):  # (before bools: True/False categories)
        if len(dtype.categories):
            return column.name, dtype.categories[0], dtype
        return column.name, "", pd.CategoricalDtype([""], ordered=dtype.ordered)
    if pd.api.types.is_bool_dtype(dtype):
        return column.name, False, dtype
    if pd.api.types.is_numeric_dtype(dtype):
        return column.name, 0, dtype
    if pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype):
        return column.name, "", dtype
    raise ValueError(
        f"Column {column.name!r} has no observed values, and its dtype {dtype} has no "
        "value keep_empty_features=True can fill it with; drop the column, or convert "
        "it to numbers, bools, strings or categories."
    )


def _nan_where(missing):
    """A float matrix with NaN where ``missing`` (for MissingIndicator)."""
    return np.where(missing, np.nan, 0.0)


def _concatenate(out, indicator, names):
    if is_dataframe(out):
        import pandas as pd

        extra = pd.DataFrame(indicator, columns=list(names), index=out.index)
        return pd.concat([out, extra], axis=1)
    return np.hstack([out, indicator.astype(out.dtype)])
