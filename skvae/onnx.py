"""Serving with ONNX: a fitted estimator's encoder and decoder as ONNX graphs.

:func:`export_encoder` writes what :meth:`~skvae.VAETransformer.transform`
computes (the posterior mean of the latent code) and :func:`export_decoder`
what :meth:`~skvae.VAETransformer.inverse_transform` computes before its last,
Python-side step (the decoder's mean, unrounded). The graphs run wherever ONNX
Runtime does, without Python, PyTorch or skvae. Each has one input and one
output, with a dynamic batch axis:

* the encoder maps ``"X"``, shape ``(batch, n_features_in_)``, to ``"Z"``,
  shape ``(batch, n_components)``;
* the decoder maps ``"Z"``, shape ``(batch, n_components)``, to ``"X"``,
  shape ``(batch, n_features_in_)``.

A model fitted with ``covariates`` is exported too. Its encoder takes the
full rows, covariate columns included, as ``transform`` does (categorical
covariates as their category codes); its decoder has a second input,
``"C"``, shape ``(batch, n_covariates)``: the covariate columns in order, a
categorical one as its category code (see :func:`covariate_input`), a
numeric one as its value. The graph turns them into the decoder's inputs
(one-hot categories, standardised numbers) and returns them in the output's
covariate columns.

The encoder takes rows as ``transform`` does after validation, missing entries
(NaN) included: it computes the mask of observed entries and fills the missing
ones inside the graph, whether or not the model was fitted on incomplete data.
What stays outside the graph (rounding counts, thresholding booleans,
DataFrame dtypes) is listed in the user guide's "Serving with ONNX".

Exporting needs ``onnx`` and ``onnxscript``, and running the graphs
``onnxruntime`` (``pip install "skvae[onnx]"``).
"""

import copy
import json
import logging
import os
import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from ._covariates import given_rows
from ._estimator import column_names

__all__ = ["covariate_input", "export_decoder", "export_encoder"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}

# Only ever a few rows: the batch axis is dynamic, and an example batch of 2
# keeps the exporter from specialising the graph to a batch of 1.
_EXAMPLE_ROWS = 2


class _Encoder(nn.Module):
    """The computation of ``transform``: the posterior mean of q(z | x), given
    the observed (not NaN) entries of ``x``."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        # With every entry observed the masked path gives the same numbers as
        # the unmasked one (the input is multiplied by ones), so one graph
        # serves complete and incomplete rows alike.
        return self.module.encode(x, ~torch.isnan(x))[0]


class _Decoder(nn.Module):
    """The computation of ``inverse_transform`` before its Python-side
    decoding: the mean of p(x | z), in the units of the data."""

    def __init__(self, module, bounded=True):
        super().__init__()
        self.module = module
        self.bounded = bounded

    def forward(self, z):
        return self.module.observation.mean(self.module.decode(z), self.bounded)


class _CovariateDecoder(_Decoder):
    """:class:`_Decoder` of a model with covariates: the coded covariate
    columns ``c`` (category codes, raw numbers) become the decoder's
    conditions inside the graph, and fill the output's covariate columns."""

    def __init__(self, module, bounded=True):
        super().__init__(module, bounded)
        columns = module.observation.covariate_columns
        self.register_buffer("columns", torch.tensor(columns, dtype=torch.long))
        # Each output column's position in [mean, c]: the means' own, or the
        # covariate's among c after them.
        n_features = module.observation.n_features
        take = list(range(n_features))
        for k, j in enumerate(columns):
            take[j] = n_features + k
        self.register_buffer("take", torch.tensor(take, dtype=torch.long))

    def forward(self, z, c):
        observation = self.module.observation
        rows = c.new_zeros((c.shape[0], observation.n_features))
        rows = rows.index_copy(1, self.columns, c)
        mean = observation.mean(self.module.decode(z, self.module.conditions(rows)),
                                self.bounded)
        return torch.cat([mean, c], dim=1).index_select(1, self.take)


def export_encoder(estimator, path, *, dtype="float32", opset=None):
    """Write a fitted estimator's encoder, as ``transform`` computes it, to an ONNX file.

    The graph maps rows ``"X"``, shape ``(batch, n_features_in_)``, to their
    posterior means ``"Z"``, shape ``(batch, n_components)``, the batch size
    being free. It contains the model's own input scaling (each likelihood's
    network input: standardisation, ``log1p`` of counts) and takes missing
    entries as NaN, as ``transform`` does. For a model with covariates the
    rows include the covariate columns (a categorical covariate as its
    category code), which the graph reads only for ``encode_covariates=True``.

    Parameters
    ----------
    estimator : VAETransformer
        A fitted estimator whose likelihoods are all numeric (no
        ``"categorical"`` columns; categorical covariates are allowed).
    path : str or os.PathLike
        File to write (conventionally ending in ``.onnx``); it is overwritten.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the graph's input, output and weights. ``"float32"``
        matches ``transform`` of float32 input, ``"float64"`` that of float64
        input; not every ONNX runtime implements every operator in float64.
    opset : int or None, default=None
        ONNX opset version; None takes the exporter's default.

    Returns
    -------
    path : str or os.PathLike
        ``path``, for convenience.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    ValueError
        If ``estimator`` has categorical columns, or ``dtype`` is unknown.
    ImportError
        If ``onnx`` or ``onnxscript`` is not installed.

    See Also
    --------
    export_decoder : The decoder, as ``inverse_transform`` computes it.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, onnxruntime
    >>> from skvae import VAETransformer
    >>> from skvae.onnx import export_encoder
    >>> X = np.random.RandomState(0).normal(size=(100, 5)).astype(np.float32)
    >>> vae = VAETransformer(max_iter=5, random_state=0).fit(X)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = export_encoder(vae, os.path.join(folder, "encoder.onnx"))
    ...     session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    >>> X_some_missing = X[:3].copy()
    >>> X_some_missing[0, 1] = np.nan
    >>> Z = session.run(["Z"], {"X": X_some_missing})[0]
    >>> Z.shape
    (3, 2)
    >>> bool(np.allclose(Z, vae.transform(X_some_missing), rtol=1e-5, atol=1e-5))
    True
    """
    module, torch_dtype = _prepare(estimator, dtype, "export_encoder")
    n_features = module.observation.n_features
    return _export(_Encoder(module), [("x", n_features, "X")], "Z", torch_dtype, path,
                   opset, estimator)


def export_decoder(estimator, path, *, dtype="float32", opset=None):
    """Write a fitted estimator's decoder mean, as ``inverse_transform`` computes it, to an ONNX file.

    The graph maps latent codes ``"Z"``, shape ``(batch, n_components)``, to
    the mean of p(x | z), ``"X"``, shape ``(batch, n_features_in_)``, in the
    units of the data: the decoder's mean through each likelihood's ``mean``
    (for Bernoulli columns probabilities, for counts the unrounded mean).
    For an estimator fitted on an array this is what ``inverse_transform``
    returns, but for count columns, which it rounds to the nearest
    non-negative integer. For one fitted on a DataFrame, ``inverse_transform`` then rounds
    integer columns, thresholds boolean ones at 0.5 and restores the columns'
    dtypes: that last step is left to the caller (see the user guide's
    "Serving with ONNX").

    For a model with covariates the graph has a second input, ``"C"``, shape
    ``(batch, n_covariates)``: the covariate values to decode under, coded
    (see :func:`covariate_input`), as ``inverse_transform(Z,
    covariates=...)`` takes them; the output's covariate columns hold them.

    Parameters
    ----------
    estimator : VAETransformer
        A fitted estimator whose likelihoods are all numeric (no
        ``"categorical"`` columns; categorical covariates are allowed).
    path : str or os.PathLike
        File to write (conventionally ending in ``.onnx``); it is overwritten.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the graph's input, output and weights.
    opset : int or None, default=None
        ONNX opset version; None takes the exporter's default.

    Returns
    -------
    path : str or os.PathLike
        ``path``, for convenience.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    ValueError
        If ``estimator`` has categorical columns, or ``dtype`` is unknown.
    ImportError
        If ``onnx`` or ``onnxscript`` is not installed.

    See Also
    --------
    export_encoder : The encoder, as ``transform`` computes it.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, onnxruntime
    >>> from skvae import VAETransformer
    >>> from skvae.onnx import export_decoder
    >>> X = np.random.RandomState(0).poisson(3.0, size=(100, 5))
    >>> vae = VAETransformer(likelihood="poisson", max_iter=5, random_state=0).fit(X)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = export_decoder(vae, os.path.join(folder, "decoder.onnx"))
    ...     session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    >>> Z = np.zeros((2, 2), dtype=np.float32)
    >>> means = session.run(["X"], {"Z": Z})[0]  # the mean counts
    >>> counts = np.maximum(np.rint(means), 0)   # inverse_transform rounds them
    >>> bool(np.array_equal(counts, vae.inverse_transform(Z)))
    True
    """
    module, torch_dtype = _prepare(estimator, dtype, "export_decoder")
    inputs = [("z", module.n_components, "Z")]
    n_covariates = len(module.observation.covariate_columns)
    if n_covariates:
        inputs.append(("c", n_covariates, "C"))
        wrapper = _CovariateDecoder(module, estimator.bound_outputs)
    else:
        wrapper = _Decoder(module, estimator.bound_outputs)
    return _export(wrapper, inputs, "X", torch_dtype, path, opset, estimator)


def _prepare(estimator, dtype, caller):
    """A copy of ``estimator``'s fitted module at ``dtype``, in evaluation mode,
    or a clear error."""
    from ._estimator import VAETransformer

    if not isinstance(estimator, VAETransformer):
        raise TypeError(f"{caller} expects a fitted VAETransformer; got "
                        f"{type(estimator).__name__}.")
    check_is_fitted(estimator)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}; got {dtype!r}.")
    module = estimator.module_
    # Categorical covariates are inputs only: their codes become one-hot
    # conditions inside the graph, and nothing is decoded to categories.
    categorical = [type(lik).__name__ for lik in module.observation.likelihoods
                   if not lik.numeric and not getattr(lik, "covariate", False)]
    if categorical:
        raise ValueError(
            f"{caller} supports models whose columns are all numeric; this one has "
            f"{categorical[0]} columns, whose coding to and from categories runs in "
            "Python. Use the estimator itself for them."
        )
    torch_dtype = _DTYPES[dtype]
    module = copy.deepcopy(module).to(device="cpu", dtype=torch_dtype).eval()
    return module, torch_dtype


def _onnx():
    """The onnx package, once onnx and onnxscript (which the exporter needs)
    are known to be installed."""
    try:
        import onnx
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "Exporting to ONNX needs onnx and onnxscript (and onnxruntime to run "
            "the graphs): pip install 'skvae[onnx]'."
        ) from exc
    return onnx


def _export(wrapper, inputs, output, dtype, path, opset, estimator):
    """Write ``wrapper`` as an ONNX graph of the ``inputs`` (each its forward
    argument, width and graph name) to ``output``, with a free batch axis."""
    onnx = _onnx()
    examples = tuple(torch.zeros(_EXAMPLE_ROWS, width, dtype=dtype) for _, width, _ in inputs)
    batch = torch.export.Dim("batch")
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    with warnings.catch_warnings(), torch.no_grad():
        # Notices of the exporter about itself, not about the model: torch's
        # pytree deprecation ("isinstance(treespec, LeafSpec) is deprecated"),
        # raised while torch.export copies its own structures, and log lines
        # for torchvision operators it skips registering.
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        # Inputs sharing the batch axis ("Z" and "C") share its name.
        warnings.filterwarnings("ignore", message=r"# The axis name: .* will not be used")
        exporter_log.setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(
                wrapper.eval(), examples, input_names=[name for _, _, name in inputs],
                output_names=[output],
                dynamic_shapes={argument: {0: batch} for argument, _, _ in inputs},
                opset_version=opset, dynamo=True, verbose=False,
            )
        finally:
            exporter_log.setLevel(level)
    model = program.model_proto
    metadata = {"producer": "skvae", "n_components": str(estimator.module_.n_components)}
    if hasattr(estimator, "feature_names_in_"):
        metadata["feature_names"] = json.dumps([str(n) for n in estimator.feature_names_in_])
    covariates = _covariate_metadata(estimator)
    if covariates:
        metadata["covariates"] = json.dumps(covariates, default=_plain)
    onnx.helper.set_model_props(model, metadata)
    onnx.save_model(model, os.fspath(path))
    return path


def _plain(value):
    """A NumPy scalar (or anything else) as JSON can hold it."""
    return value.item() if hasattr(value, "item") else str(value)


def _covariate_metadata(estimator):
    """Each covariate column of ``estimator``, in the order of the decoder's
    ``"C"``: its name, position and, for a categorical one, its categories
    (whose positions are the codes)."""
    described = estimator.column_likelihoods_
    names = column_names(estimator)
    out = []
    for j in estimator.module_.observation.covariate_columns:
        entry = described[names[j]]
        categorical = entry["likelihood"] == "covariate:categorical"
        out.append({"name": names[j], "column": j,
                    "categories": list(entry["support"]) if categorical else None})
    return out


def covariate_input(estimator, covariates, *, dtype="float32"):
    """The decoder graph's ``"C"`` input for covariate values, coded as the model codes them.

    Parameters
    ----------
    estimator : VAETransformer
        A fitted estimator with ``covariates``.
    covariates : dict, DataFrame or array-like
        The covariate values, as ``inverse_transform(Z, covariates=...)``
        takes them: a dict of one value or one per row for each covariate, a
        DataFrame holding the covariate columns, or an array of them in order.
    dtype : {"float32", "float64"}, default="float32"
        The graph's precision.

    Returns
    -------
    C : ndarray of shape (n_rows, n_covariates)
        One row per row of values (a single row when every value is a
        scalar): a categorical covariate's category code (its position among
        ``column_likelihoods_[name]["support"]``), a numeric one's value.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from skvae import VAETransformer
    >>> from skvae.onnx import covariate_input
    >>> rng = np.random.RandomState(0)
    >>> frame = pd.DataFrame(rng.normal(size=(100, 4)), columns=list("abcd"))
    >>> frame["batch"] = rng.choice(["A", "B"], 100)
    >>> vae = VAETransformer(max_iter=2, covariates=["batch"], random_state=0).fit(frame)
    >>> covariate_input(vae, {"batch": ["B", "A", "B"]})
    array([[1.],
           [0.],
           [1.]], dtype=float32)
    """
    check_is_fitted(estimator)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}; got {dtype!r}.")
    observation = estimator.module_.observation
    rows = given_rows(observation, column_names(estimator), covariates,
                      _n_rows(covariates), "covariate_input")
    if rows is None:
        raise ValueError("covariate_input: this model has no covariates; its decoder "
                         "graph takes Z only.")
    return rows[:, observation.covariate_columns].astype(dtype)


def _n_rows(covariates):
    """How many rows the covariate values ``covariates`` give: the longest
    column's length (1 when every value is a scalar)."""
    if covariates is None:
        return 1
    if hasattr(covariates, "shape") and len(getattr(covariates, "shape", ())) == 2:
        return covariates.shape[0]
    if isinstance(covariates, dict):
        return max([np.size(np.asarray(v, dtype=object)) for v in covariates.values()] + [1])
    array = np.asarray(covariates, dtype=object)
    return array.shape[0] if array.ndim == 2 else 1
