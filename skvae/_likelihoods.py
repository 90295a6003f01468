"""Likelihoods p(x | z): one class per distribution, knowing everything about its columns.

A likelihood covers a block of columns of the data. Its class holds all that
depends on the distribution:

* **the NumPy half**: which values it accepts (``check_support``), how its
  columns are coded into the float matrix the model sees and back into the
  user's values (``encode`` / ``decode``: categories, rounding), and how it is
  built for the training columns (``from_columns``: the categories seen, say);
* **its statistics** of the training data (location and scale, value gaps),
  read in place from the float matrix as *mergeable* sufficient statistics
  (``statistics``, ``merge_statistics``, ``set_statistics``), so that the
  shards of a distributed fit give the model one process would fit on all rows;
* **the torch half**: the network input for its columns (``network_input``), the
  number of decoder outputs it needs (``n_params``), the log-probability of its
  columns given those outputs (``log_prob``, summed over its columns,
  broadcasting over leading sample dimensions), the mean (``mean``) and draws
  (``sample``) with an explicit :class:`torch.Generator`, so sampling never
  touches torch's global random state.

Nothing outside this module branches on a likelihood's name: the built-ins are
chosen by name from :data:`LIKELIHOODS`, and a user's subclass of
:class:`Likelihood` is passed to ``VAETransformer(likelihood=...)`` as a class
or a factory (such as :func:`functools.partial` of a class).

The log-probabilities are written out rather than taken from
:mod:`torch.distributions`: sampling there cannot take a generator, and argument
validation costs time on every training step. Nothing here imports scikit-learn.
"""

import functools
import math
import numbers
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from ._data import dense_rows, is_sparse
from ._statistics import (
    CHUNK_ROWS,
    column_groups,
    column_moment_sums,
    column_ranges,
    map_threads,
    merge_gaps,
    merge_moments,
    merge_ranges,
    gaps_and_repeats,
    smallest_gaps,
    take,
)

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def where(names, j=0):
    """How an error message names column ``j`` of a block: ``"X"`` for arrays
    (``names`` None), else the column's name."""
    return "X" if names is None else f"column {names[j]!r}"


def _recording(init):
    """``init`` that first records its arguments on the instance (the outermost
    constructor's, when subclasses chain up)."""

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        self.__dict__.setdefault("_init_args", (args, kwargs))
        init(self, *args, **kwargs)

    return __init__


class Likelihood(nn.Module):
    """Base class of the distribution p(x | z) of a block of columns.

    Subclass it to bring your own likelihood to
    :class:`~skvae.VAETransformer`: pass the class, or a factory that takes the
    number of columns and returns an instance (``functools.partial(MyLikelihood,
    df=4)``), as ``likelihood=`` for every column, or per column in a dict or
    list. A subclass sets ``n_params`` (decoder outputs, default one per column)
    and implements :meth:`log_prob`, :meth:`mean` and :meth:`sample`; the other
    methods have defaults that suit a likelihood over real numbers.

    Parameters
    ----------
    n_features : int
        Number of columns the likelihood covers.

    Attributes
    ----------
    n_features : int
        Number of columns covered.
    n_params : int
        Number of decoder outputs it needs for those columns.
    n_inputs : int
        Width of :meth:`network_input`'s output (what the encoder sees).
    numeric : bool
        Class attribute: True when its columns hold numbers (DataFrame columns
        are then converted to float, with a clear error for anything else),
        False when :meth:`encode` takes the raw values (categories).
    pooled : bool
        Class attribute: True when :meth:`from_columns` must see every
        distinct training value (categories, a range of whole numbers): under
        a distributed fit it is then given those of every rank, so that all
        build the same likelihood. False (the default): its own shard's.

    Examples
    --------
    A Laplace likelihood with a fixed scale, in a few lines:

    >>> import math, torch
    >>> from skvae import Likelihood
    >>> class Laplace(Likelihood):
    ...     def log_prob(self, params, x):
    ...         return (-(x - params).abs() - math.log(2)).sum(-1)
    ...     def mean(self, params):
    ...         return params
    ...     def sample(self, params, generator):
    ...         u = torch.rand(params.shape, generator=generator, device=params.device) - 0.5
    ...         return params - u.sign() * torch.log1p(-2 * u.abs())
    >>> head = Laplace(3)
    >>> head.log_prob(torch.zeros(2, 3), torch.zeros(2, 3)).shape
    torch.Size([2])
    """

    name = None
    numeric = True
    pooled = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Record the arguments an instance was built with, so that a saved model
        # can rebuild it (then load its parameters and buffers).
        init = cls.__dict__.get("__init__")
        if init is not None:
            cls.__init__ = _recording(init)

    def __init__(self, n_features):
        self.__dict__.setdefault("_init_args", ((n_features,), {}))
        super().__init__()
        self.n_features = int(n_features)
        self.n_params = self.n_features
        self.n_inputs = self.n_features

    # ---------------------------------------------------------------- NumPy side

    @classmethod
    def from_columns(cls, columns, options):
        """Build for the training ``columns`` (a list of 1-D arrays or Series,
        the user's raw values) and the estimator's ``options`` (a dict, such as
        ``{"min_variance": 1e-3}``). The default takes only their number.

        In a distributed fit, the columns of a likelihood that is not
        ``numeric`` are the distinct values seen on any rank, each Series's
        ``attrs["counts"]`` holding how many rows of all ranks have each."""
        return cls(len(columns))

    def check_support(self, values, names):
        """Raise ValueError if ``values`` (rows x this block's columns, floats)
        hold values the distribution cannot take. ``names`` are the columns'
        names (None for an array), for the message; see :func:`where`."""

    def encode(self, values, names):
        """The float matrix block for raw ``values`` (rows x this block's
        columns): floats for numeric likelihoods, already checked finite.
        The default checks the support and returns ``values`` as they are."""
        self.check_support(values, names)
        return values

    def encode_unseen(self, values, names):
        """:meth:`encode`, with the values that no training row had (a
        category not seen in ``fit``) coded as missing (NaN) rather than
        refused: the block, and each column's number of such entries (an int
        array). The default has no such values: it is :meth:`encode`, with
        none."""
        return self.encode(values, names), np.zeros(self.n_features, dtype=np.int64)

    def decode(self, values):
        """Model output (rows x this block's columns, floats) as a list of
        columns in the user's values. The default returns the floats."""
        return list(values.T)

    def fit_data(self, X, columns=None):
        """Learn data-dependent constants (scaling) from the training matrix.

        ``columns`` picks this likelihood's columns of ``X`` (all when None);
        read them in place (see :mod:`skvae._statistics`), without copying ``X``.
        The default sets :meth:`statistics` of ``X``; override those three
        methods rather than this one, so that a distributed fit merges the
        shards' statistics.
        """
        stats = self.statistics(X, columns)
        if stats is not None:
            self.set_statistics(stats)

    def statistics(self, X, columns=None):
        """Sufficient statistics of this block's ``columns`` of ``X`` (any
        picklable value), or None (the default) when it learns nothing."""
        return None

    @classmethod
    def merge_statistics(cls, parts):
        """The statistics of the union of disjoint row sets, from each set's."""
        raise NotImplementedError(f"{cls.__name__} cannot merge statistics")

    def set_statistics(self, stats):
        """Set the constants (buffers) that the statistics ``stats`` give."""

    def output_range(self, low, high):
        """The range that means and draws of the block's columns are kept in
        (see ``VAETransformer(bound_outputs=...)``), given the smallest and
        largest training value of each (arrays ``low`` and ``high``). The
        default: the training range itself; return infinite ends to leave
        the outputs unbounded."""
        return low, high

    # ---------------------------------------------------------------- torch side

    def network_input(self, x):
        """What the encoder sees of this block's columns ``x`` (default: ``x``)."""
        return x

    def log_prob(self, params, x):
        """log p(x | params) of each row, summed over the block's columns.

        ``params`` has shape ``(..., n_params)`` and ``x`` ``(batch,
        n_features)``; leading sample dimensions of ``params`` broadcast. Returns
        shape ``params.shape[:-1]``. The default sums :meth:`log_prob_terms`.
        """
        return self.log_prob_terms(params, x).sum(-1)

    def log_prob_terms(self, params, x):
        """log p(x_j | params) of each column ``j`` separately, shape
        ``params.shape[:-1] + (n_features,)``.

        Needed for data with missing values, whose rows are scored on their
        observed entries only; a likelihood that implements only
        :meth:`log_prob` takes complete columns. Missing entries arrive filled
        with 0, so the terms must be finite there (their value is ignored).
        """
        raise NotImplementedError

    def impute(self, params, weights):
        """The value to fill a missing entry with, given parameters for several
        latent draws (``params``, shape ``(K, batch, n_params)``) and their
        normalised importance ``weights`` (shape ``(K, batch)``): the weighted
        mixture's mean. Shape ``(batch, n_features)``."""
        return (weights.unsqueeze(-1) * self.mean(params)).sum(0)

    @property
    def supports_missing(self):
        """Whether this likelihood can score rows with missing entries."""
        return type(self).log_prob_terms is not Likelihood.log_prob_terms

    def input_mask(self, mask):
        """Which network inputs are observed, given which of the block's entries
        are (``mask``, shape ``(batch, n_features)``). The default: one input per
        column."""
        return mask

    def mean(self, params):
        """The distribution's mean (or a summary of it) given ``params``, shape
        ``(..., n_features)``."""
        raise NotImplementedError

    def sample(self, params, generator):
        """A draw of shape ``(..., n_features)``, random numbers from ``generator``."""
        raise NotImplementedError


class Gaussian(Likelihood):
    """Normal likelihood with a learned variance per feature.

    The data are standardised inside (the location and scale are buffers fitted on
    the training data), the decoder predicts the standardised mean, and the
    log-density is reported in the original units. The variance of each feature
    is a free parameter with a floor, in standardised units, of the larger of

    * ``min_variance`` (a share of the feature's training variance); with
      ``min_variance="auto"``, ``DISCRETE_FLOOR`` (1e-3) for a feature whose
      values repeat (more than ``REPEAT_SHARE`` of the steps between its sorted
      training values are zero: counts, grey levels, rounded measurements, a
      value shared by many rows), and ``CONTINUOUS_FLOOR`` (1e-6) for a feature
      whose values are nearly all distinct, which a model may then fit as
      precisely as PCA or FactorAnalysis would, and
    * ``gap**2 / 12``, the variance of a uniform spread over the smallest gap
      between the feature's distinct training values: data recorded on a grid
      (grey levels, rounded measurements) cannot then earn an unbounded density
      by collapsing onto grid points, which would make held-out rows off those
      points score minus thousands of nats.

    A constant training feature has no gap and keeps unit scale; its floor is
    the larger of ``min_variance`` and ``CONSTANT_FLOOR`` in its own units, so
    that a held-out row that departs from the constant is not scored as
    impossible.
    """

    name = "gaussian"
    _GAP_ROWS = 10_000
    CONSTANT_FLOOR = 1e-3
    DISCRETE_FLOOR = 1e-3
    CONTINUOUS_FLOOR = 1e-6
    REPEAT_SHARE = 0.1

    def __init__(self, n_features, min_variance="auto"):
        super().__init__(n_features)
        self.min_variance = min_variance if min_variance == "auto" else float(min_variance)
        start = self.DISCRETE_FLOOR if min_variance == "auto" else self.min_variance
        self.register_buffer("loc", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.register_buffer("variance_floor", torch.full((n_features,), start))
        self.log_variance = nn.Parameter(torch.zeros(n_features))

    @classmethod
    def from_columns(cls, columns, options):
        return cls(len(columns), min_variance=options.get("min_variance", "auto"))

    def statistics(self, X, columns=None):
        """Row count, mean and squared deviations of each column, its smallest
        value gap, and its counts of repeated values and of value pairs."""
        groups = column_groups(columns, X.shape, torch.get_num_threads())
        parts = map_threads(lambda group: self._statistics(X, group), groups)
        n, mean, m2, gap, repeats, pairs = (np.concatenate(values) for values in zip(*parts))
        return {"moments": (n, mean, m2), "gap": gap, "repeats": (repeats, pairs)}

    @classmethod
    def merge_statistics(cls, parts):
        # Repeats across row sets are not seen: the merged share is a lower
        # bound, and a feature whose values repeat only across shards can get
        # the continuous floor (documented under ``distributed``).
        return {
            "moments": merge_moments([part["moments"] for part in parts]),
            "gap": merge_gaps([part["gap"] for part in parts]),
            "repeats": tuple(np.sum([part["repeats"][i] for part in parts], axis=0)
                             for i in (0, 1)),
        }

    def base_floor(self, stats):
        """Each feature's floor from ``min_variance`` alone (see the class docstring)."""
        if self.min_variance != "auto":
            return np.full(self.n_features, self.min_variance)
        repeats, pairs = stats["repeats"]
        share = np.divide(repeats, pairs, out=np.ones(self.n_features), where=pairs > 0)
        return np.where(share > self.REPEAT_SHARE, self.DISCRETE_FLOOR, self.CONTINUOUS_FLOOR)

    def set_statistics(self, stats):
        n, loc, m2 = stats["moments"]
        scale = _scale(loc, m2, n)
        gap = stats["gap"]
        spread = np.sqrt(m2 / np.maximum(n, 1))
        flat = _constant(loc, spread, n)
        _check_float32_range(loc, spread, ~flat | (gap > 0), gap)
        _check_float32_resolution(loc, spread, ~flat)
        base = self.base_floor(stats)
        floor = np.maximum(base, (gap / scale) ** 2 / 12)
        # Fewer than two distinct values: nothing tells how precise the feature is.
        constant = (gap == 0) | flat
        floor[constant] = np.maximum(base[constant], self.CONSTANT_FLOOR)
        for buffer, value in [(self.loc, loc), (self.scale, scale), (self.variance_floor, floor)]:
            buffer.copy_(torch.as_tensor(value, dtype=buffer.dtype))

    def _statistics(self, X, columns):
        """Moments and smallest value gap of the ``columns`` of ``X``."""
        n, loc, m2 = column_moment_sums(X, columns)
        constant = _constant(loc, np.sqrt(m2 / n), n)
        every = slice(None, None, max(1, len(X) // self._GAP_ROWS))
        gap, repeats, pairs = gaps_and_repeats(take(X.rows(every) if is_sparse(X) else X[every],
                                                    columns))
        # A column whose few other values all missed the row sample (a pixel
        # lit in a handful of images) would get no floor, and those rows would
        # score thousands of nats too low: read its gap from all its rows.
        missed = np.flatnonzero((gap == 0) & ~constant)
        if missed.size:
            picked = np.arange(X.shape[1])[slice(None) if columns is None else columns][missed]
            gap[missed] = smallest_gaps(X[:, picked])
        return n, loc, m2, gap, repeats, pairs

    def network_input(self, x):
        return (x - self.loc) / self.scale

    def std(self):
        """Standard deviation of each feature, in standardised units."""
        return torch.sqrt(self.log_variance.exp() + self.variance_floor)

    def log_prob(self, params, x):
        std = self.std()
        residual = ((x - self.loc) / self.scale - params) / std
        per_feature = -0.5 * residual.square() - torch.log(std * self.scale)
        return per_feature.sum(-1) - self.n_features * _HALF_LOG_2PI

    def log_prob_terms(self, params, x):
        std = self.std()
        residual = ((x - self.loc) / self.scale - params) / std
        return -0.5 * residual.square() - torch.log(std * self.scale) - _HALF_LOG_2PI

    def mean(self, params):
        return self.loc + self.scale * params

    def sample(self, params, generator):
        noise = torch.randn(params.shape, generator=generator, device=params.device)
        return self.mean(params + noise * self.std())


class LogNormal(Gaussian):
    """Log-normal likelihood with a point mass at zero: for skewed or
    zero-heavy non-negative columns (prices, incomes, amounts, capital gains
    that are 0 for most rows), whose long right tail a Gaussian on ``x`` fits
    only with a variance that spills below zero.

    Each column gets two decoder outputs: the logit of ``P(x = 0 | z)`` and
    the mean of ``log x`` given ``x > 0``, which is Gaussian exactly as in
    :class:`Gaussian` (standardised on the training rows' positive values,
    with a learned variance and its floor). So

    * ``log p(0 | z) = log sigmoid(logit)``, a probability, and
    * ``log p(x | z) = log(1 - sigmoid(logit)) + log N(log x) - log x`` for
      ``x > 0``, a density in the original units (the Jacobian included);

    ``score_samples`` of a row mixes the two, as any model of a column with a
    point mass must. Draws are 0 with probability ``sigmoid(logit)``, else
    ``exp(y)``; :meth:`mean` is ``(1 - sigmoid(logit)) exp(mu + sigma**2 / 2)``.
    The network sees the standardised ``log x`` of positive values (0 for
    zeros) and whether the value is 0. A negative value (outside the support,
    in a held-out row) is scored as a tiny positive one: very low, but finite.
    """

    name = "lognormal"

    def __init__(self, n_features, min_variance="auto"):
        super().__init__(n_features, min_variance)
        self.n_params = 2 * self.n_features
        self.n_inputs = 2 * self.n_features

    def fit_data(self, X, columns=None):
        values = np.asarray(take(X, columns), dtype=np.float64)
        # The Gaussian part learns from the positive values only.
        logs = np.full_like(values, np.nan)
        np.log(values, out=logs, where=values > 0)
        empty = np.isnan(logs).all(axis=0)
        logs[0, empty] = 0.0  # a column without positive values: log 1
        super().fit_data(logs)

    def _split(self, params):
        return params[..., : self.n_features], params[..., self.n_features :]

    def _log(self, x):
        return torch.log(torch.clamp(x, min=_TINY))

    def network_input(self, x):
        zero = x <= 0
        logged = torch.where(zero, self.loc.to(x.dtype), self._log(x))
        return torch.cat([super().network_input(logged), zero.to(x.dtype)], dim=-1)

    def input_mask(self, mask):
        return torch.cat([mask, mask], dim=-1)

    def log_prob(self, params, x):
        return self.log_prob_terms(params, x).sum(-1)

    def log_prob_terms(self, params, x):
        logit, mu = self._split(params)
        y = self._log(x)
        positive = Gaussian.log_prob_terms(self, mu, y) - y + F.logsigmoid(-logit)
        return torch.where(x == 0, F.logsigmoid(logit), positive)

    def mean(self, params):
        logit, mu = self._split(params)
        sigma = self.std() * self.scale
        return torch.sigmoid(-logit) * torch.exp(Gaussian.mean(self, mu) + sigma.square() / 2)

    def sample(self, params, generator):
        logit, mu = self._split(params)
        noise = torch.randn(mu.shape, generator=generator, device=mu.device)
        zero = torch.rand(mu.shape, generator=generator, device=mu.device) < torch.sigmoid(logit)
        # Gaussian's mean (the log's), not this class's.
        drawn = torch.exp(Gaussian.mean(self, mu + noise * self.std()))
        return torch.where(zero, torch.zeros_like(drawn), drawn)


# The smallest argument of the log-normal's log: a negative value (outside its
# support, in a held-out row) gets a very low but finite score.
_TINY = 1e-30


def _scale(loc, m2, n):
    """Standard deviations from moments; as StandardScaler, a constant feature
    keeps unit scale."""
    scale = np.sqrt(m2 / n)
    scale[_constant(loc, scale, n)] = 1.0
    return scale


def _constant(loc, scale, n):
    """Columns whose spread is float64 rounding error (StandardScaler's rule):
    relative to their mean, not to 1, so finely scaled data keep their spread."""
    eps = np.finfo(np.float64).eps
    variance = scale**2
    return variance <= n * eps * variance + (n * loc * eps) ** 2


# Training runs in float32: columns whose values or spread lie beyond what it
# represents well get a clear error instead of codes that ignore them.
_FLOAT32_RANGE = (1e-33, 1e33)


def _check_float32_range(loc, scale, varies, gap):
    """``varies``: the columns with more than one value (the spread of values
    around 1e-200 underflows to 0 in float64's moments; their gaps do not)."""
    low, high = _FLOAT32_RANGE
    with np.errstate(invalid="ignore", over="ignore"):
        small = np.flatnonzero((scale < low) & varies)
        large = np.flatnonzero(~np.isfinite(loc) | ~np.isfinite(scale)
                               | (np.abs(loc) + scale > high))
    if small.size:
        spread = f"values that vary by about {max(scale[small[0]], gap[small[0]]):.3g}"
    elif large.size:
        size = abs(loc[large[0]]) + scale[large[0]]
        spread = f"values of magnitude {size:.3g}" if np.isfinite(size) else "huge values"
    else:
        return
    raise ValueError(
        f"A column modelled as Gaussian has {spread}, outside the range ({low:g} to "
        f"{high:g}) that float32 training represents; rescale the data (for example "
        "with StandardScaler)."
    )


# The largest step between neighbouring float32 values near a column's mean, as
# a share of its standard deviation, that training accepts: rounding to float32
# then adds an error of at most a sixth of a standard deviation (its variance
# 2% of the feature's), where a larger step quantises the data the model sees
# (values near 1e8 that vary by about 1 all round to multiples of 8).
_FLOAT32_STEP = 0.5


def _check_float32_resolution(loc, scale, varies):
    """Raise when float32 cannot tell apart the values of a column that
    ``varies`` (mean ``loc``, standard deviation ``scale``): its offset from 0
    is too large for its spread."""
    with np.errstate(invalid="ignore", over="ignore"):
        step = np.spacing(np.abs(loc).astype(np.float32)).astype(np.float64)
        coarse = np.flatnonzero(varies & (step > _FLOAT32_STEP * scale))
    if not coarse.size:
        return
    j = coarse[0]
    raise ValueError(
        f"A column modelled as Gaussian has values around {loc[j]:.6g} that vary by "
        f"about {scale[j]:.3g}; float32 training resolves values of that size only "
        f"to steps of {step[j]:.3g}, too coarse for that spread. Centre the data (for "
        "example with StandardScaler, or by subtracting a reference value)."
    )


class Bernoulli(Likelihood):
    """Bernoulli likelihood on [0, 1] data, parametrised by logits.

    For grey levels strictly between 0 and 1 the log-probability is the negative
    binary cross-entropy, as is usual for image VAEs; it is not a normalised
    density for continuous values.
    """

    name = "bernoulli"

    def check_support(self, values, names):
        if not values.size:
            return
        with warnings.catch_warnings():  # an all-missing column has no extremes
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
        bad = np.flatnonzero((low < 0) | (high > 1))
        if bad.size:
            raise ValueError(
                f"likelihood='bernoulli' needs values in [0, 1]; {where(names, bad[0])} "
                f"has values in [{low[bad[0]]:g}, {high[bad[0]]:g}]. Scale the data to "
                "[0, 1] (for example with MinMaxScaler) or use likelihood='gaussian'."
            )

    def output_range(self, low, high):
        # Draws are 0 or 1 even for grey levels: 0 and 1 unless the column
        # is constant at one of them.
        return np.floor(low), np.ceil(high)

    def network_input(self, x):
        return 2 * x - 1

    def log_prob(self, params, x):
        return self.log_prob_terms(params, x).sum(-1)

    def log_prob_terms(self, params, x):
        return -F.binary_cross_entropy_with_logits(params, x.expand_as(params), reduction="none")

    def mean(self, params):
        return torch.sigmoid(params)

    def sample(self, params, generator):
        return torch.bernoulli(self.mean(params), generator=generator)


_MAX_LOG_RATE = 20.0

# count_depth="auto" models the row total of a block of at least this many
# count columns: over a handful of columns a total is itself one of the
# quantities the latent code should explain (a few counts summed), while over
# many (genes, words, species) it is the sequencing or sampling depth, a
# nuisance the codes should not spend their dimensions on.
DEPTH_MIN_COLUMNS = 20
# The smallest standard deviation of the log row total: training rows that all
# share one total (a simulation) would otherwise make any other total
# impossible.
DEPTH_MIN_SCALE = 0.05
# A row total of 0 (every count 0) is taken as this in log space: its counts
# then have means near 0, so a row of zeros is scored as certain given it.
_ZERO_TOTAL = 1e-10

COUNT_DEPTHS = ("none", "observed", "auto")

# A count block whose batch holds more than this many entries (rows x
# columns, times any leading sample dimension) is scored a slice of columns at
# a time, and in training each slice's float64 terms are recomputed in the
# backward pass instead of kept: kept, about a dozen float64 copies of a 512 x
# 20,000 batch held a gigabyte.
SCORE_CHUNK_ENTRIES = 2**18


class _Counts(Likelihood):
    """Base for counts: non-negative integers, given back rounded; the network
    sees log1p(x), standardised on the training data.

    With ``count_depth="observed"`` the row total ``l`` of the block's columns
    (its depth, or library size) is taken as given, as scVI does: the decoder
    gives each column's share of it (a softmax over the block), the mean of a
    count is ``l * share``, and the network sees log1p of the counts scaled to
    the typical total ``exp(m)`` (not standardised), so that codes describe
    the composition, not the depth. The total has a model of its own, a log-normal rounded to the
    nearest integer, ``P(L = l) = Phi((log(l + 0.5) - m) / s) - Phi((log(l -
    0.5) - m) / s)`` (``l = 0`` gets the mass below 0.5), with ``m`` and ``s``
    the mean and standard deviation of the training rows' log totals. The
    log-probability of a row is ``log P(L = l) + sum_j log p(x_j | l *
    share_j)``: the total scored by its model, then the counts given it.
    ``count_depth="auto"`` is ``"observed"`` for a block of at least
    :data:`DEPTH_MIN_COLUMNS` columns with no missing entry in training,
    else ``"none"`` (the decoder gives the log-mean of each count).
    """

    def __init__(self, n_features, count_depth="none"):
        super().__init__(n_features)
        if count_depth not in COUNT_DEPTHS:
            raise ValueError(f"count_depth must be one of {COUNT_DEPTHS}, not {count_depth!r}.")
        if count_depth == "auto" and n_features < DEPTH_MIN_COLUMNS:
            count_depth = "none"
        self.count_depth = count_depth
        self.depth = count_depth == "observed"
        self.register_buffer("input_loc", torch.zeros(n_features))
        self.register_buffer("input_scale", torch.ones(n_features))
        if count_depth != "none":
            self.register_buffer("depth_on", torch.tensor(self.depth))
            self.register_buffer("depth_loc", torch.zeros((), dtype=torch.float64))
            self.register_buffer("depth_scale", torch.ones((), dtype=torch.float64))

    def __setstate__(self, state):
        super().__setstate__(state)
        # Pickled by an skvae without the depth.
        self.__dict__.setdefault("count_depth", "none")
        self.__dict__.setdefault("depth", False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if "depth_on" in self._buffers:  # "auto" decided at training
            self.depth = bool(self.depth_on)

    @classmethod
    def from_columns(cls, columns, options):
        count_depth = options.get("count_depth", "none")
        # (A sparse matrix's columns, read one by one, hold no missing entry.)
        if count_depth == "observed" and not getattr(columns, "complete", False):
            for column in columns:
                if _pandas().isna(np.asarray(column, dtype=object)).any():
                    raise ValueError(_depth_missing_message(
                        cls.name, f"column {getattr(column, 'name', None)!r}"))
        return cls(len(columns), count_depth=count_depth)

    def check_support(self, values, names):
        observed = ~np.isnan(values)
        if self.depth and not observed.all():  # the total is not known
            j = int(np.flatnonzero(~observed.all(axis=0))[0])
            raise ValueError(_depth_missing_message(self.name, where(names, j)))
        bad = np.flatnonzero(
            (observed & ((values < 0) | (values != np.round(values)))).any(axis=0)
        )
        if bad.size:
            raise ValueError(
                f"{where(names, bad[0])} has negative or fractional values, but "
                f"likelihood={self.name!r} is for counts (non-negative integers)."
            )

    def decode(self, values):
        return list(np.maximum(np.rint(values), 0).astype(np.int64).T)

    def statistics(self, X, columns=None):
        """Moments of log1p of the counts (what the network sees); where the
        depth may be modelled, also those of the log row totals and the
        number of missing entries."""
        moments = column_moment_sums(X, columns, transform=np.log1p)
        if self.count_depth == "none":
            return moments
        return {"input": moments, **depth_statistics(X, columns)}

    @classmethod
    def merge_statistics(cls, parts):
        if not isinstance(parts[0], dict):
            return merge_moments(parts)
        return {"input": merge_moments([part["input"] for part in parts]),
                "depth": merge_moments([part["depth"] for part in parts]),
                "missing": sum(part["missing"] for part in parts)}

    def set_statistics(self, stats):
        if isinstance(stats, dict):
            self._set_depth(stats)
            stats = stats["input"]
        n, loc, m2 = stats
        scale = np.sqrt(m2 / n)
        scale[scale == 0] = 1.0
        self.input_loc.copy_(torch.as_tensor(loc))
        self.input_scale.copy_(torch.as_tensor(scale))

    def _set_depth(self, stats):
        """Decide ``"auto"`` and fit the total's log-normal."""
        if self.count_depth == "observed" and stats["missing"]:
            raise ValueError(_depth_missing_message(self.name, "a count column"))
        self.depth = not stats["missing"]
        n, loc, m2 = stats["depth"]
        scale = max(float(np.sqrt(m2[0] / max(n[0], 1))), DEPTH_MIN_SCALE)
        self.depth_on.fill_(self.depth)
        self.depth_loc.fill_(float(loc[0]))
        self.depth_scale.fill_(scale)

    @property
    def supports_missing(self):
        return not self.depth and self.count_depth != "observed"

    def network_input(self, x):
        if self.depth:
            # log1p of the counts at the typical total, not standardised: on
            # PBMC cells, standardising each gene (which lifts the noise of
            # rare genes to the weight of the markers) gave codes with a lower
            # cell-type accuracy (0.78 against 0.81) and held-out scores 2
            # nats lower (benchmarks/bench_counts.py).
            total = x.sum(-1, keepdim=True)
            typical = self.depth_loc.exp().to(x.dtype)
            return torch.log1p(torch.where(total > 0, x * (typical / total.clamp(min=1)), x))
        return (torch.log1p(x) - self.input_loc) / self.input_scale

    @staticmethod
    def _in_float64(params, x):
        """``params`` and ``x`` in float64, for the log-probability.

        Its terms (``x * log(rate)`` and ``lgamma(x + 1)``, about ``x log x``
        each) cancel to a few nats when the rate fits the count: in float32 a
        count of a million would be scored about a nat off, and one of 3e8
        hundreds of nats above 0, so the training loss, the early-stopping
        score and the ``score_samples`` of float32 input would follow rounding
        error. The rest of the model stays in its own precision.
        """
        return params.to(torch.float64), x.to(torch.float64)

    def _rate(self, params):
        """The decoder outputs that give the counts' means (log-means, or
        with the depth modelled, logits of the shares)."""
        return params if self.n_params == self.n_features else params[..., : self.n_features]

    def _log_mean(self, params, x):
        """Each count's log-mean, and ``x``, in float64."""
        if not self.depth:
            return self._in_float64(self._rate(params).clamp(max=_MAX_LOG_RATE), x)
        logits, x = self._in_float64(self._rate(params), x)
        total = x.sum(-1, keepdim=True).clamp(min=_ZERO_TOTAL)
        return torch.log_softmax(logits, -1) + total.log(), x

    def log_depth(self, total):
        """log P(L = ``total``) of row totals (float64) under the fitted
        rounded log-normal (see the class docstring)."""
        loc, scale = self.depth_loc.to(total), self.depth_scale.to(total)
        upper = (torch.log(total + 0.5) - loc) / scale
        lower = (torch.log((total - 0.5).clamp(min=0.5)) - loc) / scale
        lower = torch.where(total > 0, lower, torch.full_like(lower, -math.inf))
        return log_normal_interval(lower, upper)

    def log_prob(self, params, x):
        width = max(1, SCORE_CHUNK_ENTRIES // max(1, params[..., :1].numel()))
        if width >= self.n_features or type(self).log_prob_terms is not _Counts.log_prob_terms:
            return self.log_prob_terms(params, x).sum(-1)
        return self._log_prob_in_slices(params, x, width)

    def log_prob_terms(self, params, x):
        """Each count's log-probability; with the depth modelled, each also
        carries an equal share of the total's, ``log P(L = l) / n_features``,
        so that the terms sum to :meth:`log_prob` (such a block takes complete
        rows only, so no share is ever dropped)."""
        # In float64 (see _Counts._in_float64): for a large count its terms cancel.
        log_mu, x = self._log_mean(params, x)
        terms = self._count_terms(log_mu, x, slice(None), self._outputs(params)[1])
        if self.depth:
            terms = terms + self.log_depth(x.sum(-1, keepdim=True)) / self.n_features
        return terms.to(params.dtype)

    def _log_prob_in_slices(self, params, x, width):
        """:meth:`log_prob` of a wide batch, ``width`` columns at a time (see
        :data:`SCORE_CHUNK_ENTRIES`); the same sum as the whole, to rounding.

        The outputs are split into views once (not sliced per slice, whose
        backward would fill a zero gradient of the whole batch per slice)."""
        if torch.is_grad_enabled():
            def run(function, *args):
                return checkpoint(function, *args, use_reentrant=False)
        else:
            def run(function, *args):
                return function(*args)
        rate, zero_logit = self._outputs(params)
        rates, xs = rate.split(width, -1), x.split(width, -1)
        zero_logits = [None] * len(rates) if zero_logit is None else zero_logit.split(width, -1)
        shift = total = None
        if self.depth:  # log(total) - logsumexp(logits): the shares' log-normaliser
            total = x.sum(-1, keepdim=True, dtype=torch.float64)
            normaliser = torch.logsumexp(torch.stack(
                [run(self._slice_logsumexp, piece) for piece in rates], -1), -1)
            shift = total.clamp(min=_ZERO_TOTAL).log() - normaliser.unsqueeze(-1)
        out = sum(
            run(self._slice_log_prob, *pieces, shift, slice(start, start + width))
            for start, pieces in zip(range(0, self.n_features, width),
                                     zip(rates, zero_logits, xs))
        )
        if self.depth:
            out = out + self.log_depth(total).squeeze(-1)
        return out.to(params.dtype)

    def _outputs(self, params):
        """The decoder outputs that give the means (see :meth:`_rate`), and
        those of a zero-inflated likelihood's structural zeros (or None)."""
        if self.n_params == self.n_features:
            return params, None
        return params.split([self.n_features, self.n_params - self.n_features], -1)

    @staticmethod
    def _slice_logsumexp(rate):
        return torch.logsumexp(rate.to(torch.float64), -1)

    def _slice_log_prob(self, rate, zero_logit, x, shift, cols):
        rate, x = self._in_float64(rate, x)
        log_mu = rate + shift if self.depth else rate.clamp(max=_MAX_LOG_RATE)
        return self._count_terms(log_mu, x, cols, zero_logit).sum(-1)

    def _count_mean(self, params):
        rate = self._rate(params)
        if not self.depth:
            return rate.clamp(max=_MAX_LOG_RATE).exp()
        return torch.softmax(rate, -1) * self.depth_loc.exp().to(params.dtype)

    def mean(self, params):
        """The counts' means; with the depth modelled, at the typical total
        ``exp(m)``."""
        return self._count_mean(params)

    def _draw_mean(self, params, generator):
        """The counts' means for a draw: with the depth modelled, a total drawn
        from its model (one per row) times the shares."""
        if not self.depth:
            return self._count_mean(params)
        noise = torch.randn(params.shape[:-1] + (1,), generator=generator,
                            device=params.device, dtype=torch.float64)
        total = torch.floor((self.depth_loc + self.depth_scale * noise).exp() + 0.5)
        return (torch.softmax(self._rate(params).double(), -1) * total).to(params.dtype)


# What early_stopping="auto" takes for a count likelihood.
COUNT_LIKELIHOOD = _Counts


def depth_statistics(X, columns=None):
    """Moments of the log of the row totals of ``X``'s ``columns`` (a total of 0
    counted as 0.5, the middle of its interval), and their number of missing
    entries (left out of the totals)."""
    logs, missing = [], 0
    step = dense_rows(X, CHUNK_ROWS)
    for start in range(0, X.shape[0], step):
        block = np.asarray(take(X[start : start + step], columns), dtype=np.float64)
        nan = np.isnan(block)
        missing += int(nan.sum())
        logs.append(np.log(np.maximum(np.where(nan, 0.0, block).sum(axis=1), 0.5)))
    logs = np.concatenate(logs)[:, None] if logs else np.zeros((0, 1))
    return {"depth": column_moment_sums(logs), "missing": missing}


def log_normal_interval(low, high):
    """``log(Phi(high) - Phi(low))`` for ``low <= high``, accurate in either
    tail (the interval is moved below 0 by symmetry)."""
    flip = low > 0
    low, high = torch.where(flip, -high, low), torch.where(flip, -low, high)
    log_high = torch.special.log_ndtr(high)
    return log_high + torch.log(-torch.expm1(torch.special.log_ndtr(low) - log_high))


def _depth_missing_message(name, column):
    return (
        f"count_depth='observed' takes each row's total of its likelihood={name!r} "
        f"columns as given, but {column} has missing entries, so the totals are not "
        "known. Fill them in first (for example with VAEImputer), or use "
        "count_depth='none' (or 'auto', which then models no total)."
    )


class Poisson(_Counts):
    """Poisson likelihood for counts.

    ``log p(x_j | z) = x_j log mu_j - mu_j - log x_j!``, where the decoder
    gives ``log mu_j`` (or, with ``count_depth="observed"``, the logits of
    ``mu_j / l``, ``l`` the row's total: see ``VAETransformer(count_depth=...)``).
    Means and draws are counts; the network sees ``log1p(x)``, standardised.

    Parameters
    ----------
    n_features : int
        Number of columns.
    count_depth : {"none", "observed", "auto"}, default="none"
        Whether the row total of the columns is taken as given and modelled on
        its own (``"auto"``: when there are at least 20 columns and no missing
        entries). The estimator passes its ``count_depth``.

    Examples
    --------
    >>> import torch
    >>> from skvae.likelihoods import Poisson
    >>> head = Poisson(2)
    >>> x = torch.tensor([[0.0, 3.0]])
    >>> head.log_prob(torch.zeros(1, 2), x)  # log-rates 0: rate 1
    tensor([-3.7918])
    """

    name = "poisson"

    def _count_terms(self, log_rate, x, cols, zero_logit):
        return x * log_rate - log_rate.exp() - torch.lgamma(x + 1)

    def sample(self, params, generator):
        return torch.poisson(self._draw_mean(params, generator), generator=generator)


class NegativeBinomial(_Counts):
    """Negative binomial for over-dispersed counts: mean from the decoder, and a
    learned inverse dispersion ``theta`` per feature (variance ``mu + mu**2 /
    theta``), its log the parameter ``log_theta``.

    The decoder gives ``log mu_j`` (or, with ``count_depth="observed"``, the
    logits of ``mu_j / l``, as for :class:`Poisson`).

    Parameters
    ----------
    n_features : int
        Number of columns.
    count_depth : {"none", "observed", "auto"}, default="none"
        As for :class:`Poisson`.

    Examples
    --------
    >>> import torch
    >>> from skvae.likelihoods import NegativeBinomial
    >>> head = NegativeBinomial(2)  # theta = 1 to start with
    >>> head.mean(torch.log(torch.tensor([[2.0, 5.0]])))
    tensor([[2., 5.]])
    """

    name = "negbinom"

    def __init__(self, n_features, count_depth="none"):
        super().__init__(n_features, count_depth)
        self.log_theta = nn.Parameter(torch.zeros(n_features))

    def theta(self):
        return self.log_theta.clamp(-10.0, 10.0).exp()

    def _count_terms(self, log_mu, x, cols, zero_logit):
        log_theta = self.log_theta.clamp(-10.0, 10.0).to(log_mu.dtype)
        if log_theta.shape[-1] == self.n_features:  # (not one shared by all columns)
            log_theta = log_theta[..., cols]
        theta = log_theta.exp()
        log_theta_mu = torch.logaddexp(log_theta, log_mu)
        return (
            torch.lgamma(x + theta)
            - torch.lgamma(theta)
            - torch.lgamma(x + 1)
            + theta * (log_theta - log_theta_mu)
            + x * (log_mu - log_theta_mu)
        )

    def sample(self, params, generator):
        # A gamma-Poisson mixture: rate ~ Gamma(theta, theta / mean).
        with torch.no_grad():
            mean = self._draw_mean(params, generator)
            theta = self.theta().expand_as(mean)
            rate = standard_gamma(theta, generator) * (mean / theta)
            return torch.poisson(rate, generator=generator)


class _ZeroInflated:
    """A count likelihood with a point mass at 0 (mixed in before it): two
    decoder outputs per column, the count's (as without) and the logit of the
    probability ``pi`` that the entry is a structural 0."""

    def _zero_logit(self, params):
        return params[..., self.n_features :]

    def _count_terms(self, log_mu, x, cols, zero_logit):
        """``zero_logit``: the logits of ``pi`` of the columns ``cols``."""
        counts = super()._count_terms(log_mu, x, cols, zero_logit)
        logit = zero_logit.to(counts.dtype)
        kept = F.logsigmoid(-logit) + counts  # log((1 - pi) p(x))
        return torch.where(x == 0, torch.logaddexp(F.logsigmoid(logit), kept), kept)

    def mean(self, params):
        """``(1 - pi)`` times the count's mean (with the depth modelled, at
        the typical total)."""
        return self._count_mean(params) * torch.sigmoid(-self._zero_logit(params))

    def sample(self, params, generator):
        draws = super().sample(params, generator)
        pi = torch.sigmoid(self._zero_logit(params)).to(draws.dtype)
        zero = torch.rand(draws.shape, generator=generator, device=draws.device,
                          dtype=draws.dtype) < pi
        return torch.where(zero, torch.zeros_like(draws), draws)


class ZeroInflatedPoisson(_ZeroInflated, Poisson):
    """Zero-inflated Poisson likelihood for counts with more zeros than a
    Poisson has (dropouts, structural zeros).

    Each column gets two decoder outputs: the Poisson's log-rate ``log mu``
    (or, with ``count_depth="observed"``, the logit of its share of the row
    total, as for :class:`Poisson`) and the logit of ``pi``, the probability
    that the entry is a structural 0 whatever the rate, as in scVI. So
    ``p(0 | z) = pi + (1 - pi) exp(-mu)`` and ``p(x | z) = (1 - pi)
    Poisson(x; mu)`` for ``x > 0``, computed in log space (``logsigmoid`` and
    ``logaddexp``) in float64. The outputs are laid out as all the log-rates,
    then all the logits. :meth:`mean` is ``(1 - pi) mu``; a draw is 0 with
    probability ``pi``, else a Poisson draw.

    Parameters
    ----------
    n_features : int
        Number of columns.
    count_depth : {"none", "observed", "auto"}, default="none"
        As for :class:`Poisson`.

    Examples
    --------
    >>> import torch
    >>> from skvae.likelihoods import ZeroInflatedPoisson
    >>> head = ZeroInflatedPoisson(1)
    >>> params = torch.tensor([[0.0, 0.0]])  # mu = 1, pi = 1/2
    >>> head.log_prob(params, torch.tensor([[0.0]])).exp()  # 1/2 + exp(-1) / 2
    tensor([0.6839])
    >>> head.mean(params)
    tensor([[0.5000]])
    """

    name = "zip"

    def __init__(self, n_features, count_depth="none"):
        super().__init__(n_features, count_depth)
        self.n_params = 2 * self.n_features


class ZeroInflatedNegativeBinomial(_ZeroInflated, NegativeBinomial):
    """Zero-inflated negative binomial likelihood for over-dispersed counts
    with excess zeros, as scVI's ZINB.

    Each column gets two decoder outputs, as for
    :class:`ZeroInflatedPoisson`: the log-mean ``log mu`` (or the logit of its
    share of the row total) and the logit of the structural-zero probability
    ``pi``; its inverse dispersion ``theta`` is learned per column, as in
    :class:`NegativeBinomial`. So ``p(0 | z) = pi + (1 - pi) NB(0; mu,
    theta)`` and ``p(x | z) = (1 - pi) NB(x; mu, theta)`` for ``x > 0``.
    :meth:`mean` is ``(1 - pi) mu``; a draw is 0 with probability ``pi``, else
    a gamma-Poisson draw.

    Parameters
    ----------
    n_features : int
        Number of columns.
    count_depth : {"none", "observed", "auto"}, default="none"
        As for :class:`Poisson`.

    Examples
    --------
    >>> import torch
    >>> from skvae.likelihoods import ZeroInflatedNegativeBinomial
    >>> head = ZeroInflatedNegativeBinomial(1)  # theta = 1
    >>> params = torch.tensor([[0.0, 0.0]])  # mu = 1, pi = 1/2
    >>> p0 = head.log_prob(params, torch.tensor([[0.0]])).detach().exp()
    >>> round(float(p0), 4)  # 1/2 + NB(0; 1, 1) / 2 = 1/2 + (1/2) / 2
    0.75
    """

    name = "zinb"

    def __init__(self, n_features, count_depth="none"):
        super().__init__(n_features, count_depth)
        self.n_params = 2 * self.n_features


def init_args(likelihood):
    """The positional and keyword arguments ``likelihood`` was built with."""
    recorded = likelihood.__dict__.get("_init_args")
    if recorded is not None:
        return recorded
    # A built-in loaded from a file of an skvae that did not record them.
    if isinstance(likelihood, Discrete):
        return (list(likelihood.low), list(likelihood.high)), {}
    if isinstance(likelihood, Categorical):
        return (list(likelihood.categories),), {}
    if isinstance(likelihood, Gaussian):
        return (likelihood.n_features,), {"min_variance": likelihood.min_variance}
    return (likelihood.n_features,), {}


def standard_gamma(shape, generator):
    """Gamma(shape, 1) draws, every random number from ``generator``.

    Marsaglia and Tsang's (2000) squeeze-and-reject method, vectorised; shapes
    below 1 are boosted (Gamma(a) = Gamma(a + 1) * U**(1/a)). torch's own gamma
    sampler takes no generator, so it would use the process-wide random state.
    """
    flat = shape.reshape(-1)
    device, dtype = flat.device, flat.dtype
    boosted = torch.where(flat < 1, flat + 1, flat)
    d = boosted - 1.0 / 3.0
    c = torch.rsqrt(9.0 * d)
    out = torch.empty_like(flat)
    pending = torch.arange(flat.numel(), device=device)
    for _ in range(1000):  # each round accepts over 95% of the rest
        if pending.numel() == 0:
            break
        dd, cc = d[pending], c[pending]
        x = torch.randn(pending.shape, generator=generator, device=device, dtype=dtype)
        u = torch.rand(pending.shape, generator=generator, device=device, dtype=dtype)
        v = (1 + cc * x) ** 3
        safe_v = v.clamp(min=torch.finfo(dtype).tiny)
        accept = (v > 0) & (u.log() < 0.5 * x**2 + dd - dd * safe_v + dd * safe_v.log())
        out[pending[accept]] = (dd * safe_v)[accept]
        pending = pending[~accept]
    small = flat < 1
    u = torch.rand(flat.shape, generator=generator, device=device, dtype=dtype)
    out = torch.where(small, out * u.pow(1.0 / flat), out)
    return out.reshape(shape.shape)


def _pandas():
    import pandas as pd  # needed only for categorical columns

    return pd


class Categorical(Likelihood):
    """Categorical (softmax) likelihood over the categories seen in ``fit``.

    In the float matrix each column holds integer codes 0..n_categories-1 (the
    categories in sorted order); the network sees them one-hot encoded, and
    :meth:`decode` gives the categories back.

    The rare categories of a column can share one *slot* (``infrequent``, as
    ``min_frequency`` and ``max_categories`` choose them): the softmax then
    has a logit for each frequent category and one for the group, which the
    network sees as one input, and a category ``c`` of the group has the
    probability of the slot times its share of the group's training rows,
    ``count(c) / count(group)``, so that the probabilities of the real
    categories still sum to 1. The mean and the imputation of the slot are its
    most frequent category; a draw from it is one of its categories, drawn by
    their training counts.

    Parameters
    ----------
    categories : list of sequences
        Each column's categories, in code order.
    counts : list of sequences of int, default=None
        Each column's number of training rows of each category (None: not
        recorded); needed where ``infrequent`` groups categories.
    infrequent : list of sequences of int, default=None
        Each column's codes of the categories that share its infrequent slot
        (an empty sequence: none); None: no column groups any.
    """

    name = "categorical"
    numeric = False
    pooled = True

    def __init__(self, categories, counts=None, infrequent=None):
        super().__init__(len(categories))
        self.categories = [tuple(c) for c in categories]
        self.n_categories = [len(c) for c in self.categories]
        self.counts = None if counts is None else [tuple(int(n) for n in c) for c in counts]
        groups = [()] * self.n_features if infrequent is None else list(infrequent)
        self.infrequent = [tuple(sorted({int(code) for code in group})) for group in groups]
        _check_grouping(self.n_categories, self.counts, self.infrequent)
        # Logits (and network inputs) per column: the frequent categories, then
        # the infrequent slot when there is one.
        self.n_slots = [n - len(group) + bool(group)
                        for n, group in zip(self.n_categories, self.infrequent)]
        self.grouped = any(self.infrequent)
        self.n_params = self.n_inputs = sum(self.n_slots)
        self._build_layout()

    def output_range(self, low, high):
        # Any category seen in fit may be drawn.
        return np.full_like(low, -np.inf), np.full_like(high, np.inf)

    def _build_layout(self):
        """Index tensors that handle every column at once.

        ``_offsets`` are each column's first position among the flat logits
        (``n_params``: the columns' slots one after the other), and
        ``_input_column`` the column of each logit (and network input).
        ``_grid`` lays the flat logits out as a ``(n_features, max slots)``
        grid whose cells past a column's last slot repeat its first, so that
        one ``argmax`` over the grid's rows finds every column's mode (the
        first of equal values, as over the column alone). With grouped
        categories, :meth:`_group_layout` adds those of the slots. They follow
        the module to its device but are not saved: the constructor's
        arguments rebuild them.
        """
        counts = torch.tensor(self.n_slots, dtype=torch.long)
        offsets = torch.cumsum(counts, 0) - counts
        input_column = torch.repeat_interleave(torch.arange(len(counts)), counts)
        slot = torch.arange(max(self.n_slots, default=0))
        grid = offsets.unsqueeze(-1) + torch.where(slot < counts.unsqueeze(-1), slot, 0)
        buffers = {"_offsets": offsets, "_input_column": input_column, "_grid": grid}
        if self.grouped:
            buffers.update(self._group_layout(offsets.tolist()))
        for name, tensor in buffers.items():
            self.register_buffer(name, tensor, persistent=False)

    def _group_layout(self, offsets):
        """The index tensors of grouped categories: ``_category_offsets``
        (each column's first position among the flat categories),
        ``_category_slot`` (each category's position among the flat logits),
        ``_category_count`` and ``_slot_count`` (each category's training
        rows and its slot's: 1 and 1 for a frequent category, whose share is
        1), ``_slot_category`` (each slot's category code: the most frequent
        of the slot's), and, one row per column that groups some
        (``_grouped_columns``), the codes and counts of its infrequent
        categories (``_group_codes``, ``_group_counts``, padded with zero
        counts). All are integers, so the shares are exact in any dtype."""
        slots, counts, totals, representatives, members = [], [], [], [], []
        for j, (n, group) in enumerate(zip(self.n_categories, self.infrequent)):
            frequent = np.setdiff1d(np.arange(n), group).astype(np.int64)
            slot = np.full(n, len(frequent))
            slot[frequent] = np.arange(len(frequent))
            count, total = np.ones(n, dtype=np.int64), np.ones(n, dtype=np.int64)
            representatives.append(frequent)
            if group:
                rows = np.asarray(self.counts[j], dtype=np.int64)[list(group)]
                count[list(group)], total[list(group)] = rows, rows.sum()
                representatives.append(np.array([group[int(np.argmax(rows))]]))
                members.append((list(group), rows))
            slots.append(slot + offsets[j])
            counts.append(count)
            totals.append(total)
        width = max(len(codes) for codes, _ in members)
        codes = torch.zeros((len(members), width), dtype=torch.long)
        weights = torch.zeros((len(members), width), dtype=torch.long)
        for g, (group, rows) in enumerate(members):
            codes[g, : len(group)] = torch.as_tensor(group)
            weights[g, : len(group)] = torch.as_tensor(rows)
        self._grouped_columns = [j for j, group in enumerate(self.infrequent) if group]
        n_categories = torch.tensor(self.n_categories, dtype=torch.long)
        flat = {"_category_slot": slots, "_category_count": counts, "_slot_count": totals,
                "_slot_category": representatives}
        return {
            "_category_offsets": torch.cumsum(n_categories, 0) - n_categories,
            **{name: torch.as_tensor(np.concatenate(parts), dtype=torch.long)
               for name, parts in flat.items()},
            "_group_codes": codes,
            "_group_counts": weights,
        }

    def __setstate__(self, state):
        super().__setstate__(state)
        if "n_slots" not in self.__dict__:  # pickled by an skvae without grouping
            self.counts, self.infrequent = None, [()] * self.n_features
            self.n_slots, self.grouped = list(self.n_categories), False
        if "_grid" not in self._buffers:  # pickled by an skvae without them
            self._build_layout()

    @classmethod
    def from_columns(cls, columns, options):
        """The categories of each column (the values seen) with their counts,
        and the rare ones that ``options["min_frequency"]`` and
        ``options["max_categories"]`` group (see :func:`infrequent_codes`)."""
        tallies = [tally(column) for column in columns]
        groups = [infrequent_codes(counts, options.get("min_frequency"),
                                   options.get("max_categories"))
                  for _, counts in tallies]
        return cls([categories for categories, _ in tallies],
                   [counts.tolist() for _, counts in tallies],
                   groups if any(groups) else None)

    def _lookup(self, values):
        """Each column's codes for ``values`` (NaN where missing), and where
        they hold a value that is not one of its categories (NaN there too)."""
        pd = _pandas()
        codes = np.empty(values.shape, dtype=np.float64)
        unseen = np.zeros(values.shape, dtype=bool)
        for j, categories in enumerate(self.categories):
            column = pd.Series(np.asarray(values[:, j], dtype=object))
            missing = column.isna().to_numpy()
            index = pd.Index(categories).get_indexer(column).astype(np.float64)
            unseen[:, j] = (index < 0) & ~missing
            index[missing | unseen[:, j]] = np.nan
            codes[:, j] = index
        return codes, unseen

    def encode(self, values, names):
        codes, unseen = self._lookup(values)
        for j in np.flatnonzero(unseen.any(axis=0)):
            column = np.asarray(values[:, j], dtype=object)[unseen[:, j]]
            shown = sorted({str(v) for v in column})[:5]
            raise ValueError(
                f"{where(names, j).capitalize()} has categories not seen in fit: "
                f"{shown}. Refit on data that includes them, map them to a known "
                "category, or set handle_unknown='warn' or 'ignore' to treat them "
                "as missing entries."
            )
        return codes

    def encode_unseen(self, values, names):
        codes, unseen = self._lookup(values)
        return codes, unseen.sum(axis=0)

    def decode(self, values):
        columns = []
        for j, categories in enumerate(self.categories):
            numbers = all(isinstance(c, (int, float, np.number)) for c in categories)
            lookup = np.asarray(categories, dtype=None if numbers else object)
            columns.append(lookup[np.rint(values[:, j]).astype(int)])
        return columns

    def _columns(self, params):
        return torch.split(params, self.n_slots, dim=-1)

    def _layout(self, name, device):
        """Index buffer ``name`` on ``device``."""
        tensor = getattr(self, name)
        return tensor if tensor.device == device else tensor.to(device)

    def _slots(self, x):
        """The position among the flat logits of each entry's slot, for the
        category codes ``x``."""
        if not self.grouped:
            return x.long() + self._layout("_offsets", x.device)
        categories = x.long() + self._layout("_category_offsets", x.device)
        return self._layout("_category_slot", x.device)[categories]

    def _category(self, slots):
        """The category code of each column's slot ``slots`` (positions within
        the column): the slot's most frequent category."""
        if not self.grouped:
            return slots
        flat = slots + self._layout("_offsets", slots.device)
        return self._layout("_slot_category", slots.device)[flat]

    def _per_input(self, values):
        """Each column's entry of ``values`` (shape ``(..., n_features)``) for
        each of its logits, shape ``(..., n_params)``."""
        rows = values.reshape(-1, self.n_features)  # a 2-D index_select is the fast one
        picked = rows.index_select(-1, self._layout("_input_column", values.device))
        return picked.reshape(values.shape[:-1] + (self.n_params,))

    def _normalise(self, params):
        """A softmax of every column at once: each column's logits less their
        largest, the exponentials of those, and each column's sum of them
        (shapes ``params.shape``, ``params.shape`` and ``params.shape[:-1] +
        (n_features,)``)."""
        with torch.no_grad():  # the log-softmax does not depend on the shift
            # Column by column: a few strided reductions, which autograd does
            # not record, cost less than one scatter_reduce over the row.
            top = torch.stack([logits.amax(-1) for logits in self._columns(params)], -1)
        shifted = params - self._per_input(top)
        exp = shifted.exp()
        rows = exp.reshape(-1, self.n_params)
        sums = rows.new_zeros(rows.shape[0], self.n_features).index_add(
            -1, self._layout("_input_column", params.device), rows)
        return shifted, exp, sums.reshape(params.shape[:-1] + (self.n_features,))

    def network_input(self, x):
        # Codes must be valid: missing entries come filled with 0 (Observation).
        codes = self._slots(x)
        return x.new_zeros(x.shape[:-1] + (self.n_inputs,)).scatter_(-1, codes, 1)

    def log_prob(self, params, x):
        return self.log_prob_terms(params, x).sum(-1)

    def log_prob_terms(self, params, x):
        shifted, _, sums = self._normalise(params)
        terms = shifted.gather(-1, self._slots(x).expand(sums.shape)) - sums.log()
        if self.grouped:  # a grouped category's share of its slot
            categories = x.long() + self._layout("_category_offsets", x.device)
            count = self._layout("_category_count", x.device)[categories].to(terms.dtype)
            total = self._layout("_slot_count", x.device)[categories].to(terms.dtype)
            terms = terms + (count.log() - total.log())
        return terms

    def _mode(self, values):
        """The position of the largest of ``values`` (shape ``(..., n_params)``)
        within each column, shape ``(..., n_features)``."""
        grid = self._layout("_grid", values.device)
        if grid.numel() > 4 * self.n_params:
            # One wide column among narrow ones: the padded grid would be many
            # times the logits' size, so take the columns one at a time.
            return torch.stack([c.argmax(-1) for c in self._columns(values)], dim=-1)
        rows = values.reshape(-1, self.n_params)
        picked = rows.index_select(-1, grid.reshape(-1))
        return picked.reshape(values.shape[:-1] + grid.shape).argmax(-1)

    def impute(self, params, weights):
        """The most probable category under the weighted mixture (of a slot
        of grouped categories, its most frequent one)."""
        _, exp, sums = self._normalise(params)
        share = self._per_input(weights.unsqueeze(-1) / sums)
        return self._category(self._mode((share * exp).sum(0))).to(params.dtype)

    def input_mask(self, mask):
        column = self._layout("_input_column", mask.device)
        return mask.gather(-1, column.expand(mask.shape[:-1] + column.shape))

    def mean(self, params):
        """The most probable category's code (the mode) of each column (of a
        slot of grouped categories, its most frequent one)."""
        return self._category(self._mode(params)).to(params.dtype)

    def sample(self, params, generator):
        # One draw per column, as torch.multinomial makes them: the random
        # numbers taken from the generator depend on each column's width.
        draws = [
            torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)
            for logits in self._columns(params)
        ]
        slots = torch.stack(draws, dim=-1)
        if self.grouped:
            slots = self._within_slots(slots, generator)
        return slots.to(params.dtype)

    def _within_slots(self, slots, generator):
        """Category codes for drawn ``slots`` (shape ``(rows, n_features)``):
        in an infrequent slot, one of its categories drawn by training count
        (one draw per row for every grouped column, from ``generator``)."""
        codes = self._category(slots)
        counts = self._layout("_group_counts", slots.device).float()
        inner = torch.multinomial(counts, slots.shape[0], replacement=True, generator=generator)
        picked = self._layout("_group_codes", slots.device).gather(1, inner)
        for g, j in enumerate(self._grouped_columns):
            in_group = slots[:, j] == self.n_slots[j] - 1
            codes[:, j] = torch.where(in_group, picked[g], codes[:, j])
        return codes


class Discrete(Categorical):
    """Whole numbers, each value of the training range a category of its own.

    Every integer from a column's smallest training value ``low`` to its
    largest ``high`` gets a probability (values that no training row holds
    included), so the model can reproduce any histogram over the range:
    ratings, years of schooling, months of tenure, and values heaped on round
    numbers, which a smooth count or Gaussian likelihood blurs. Two more
    categories hold the values below ``low`` and above ``high``, spread over
    them geometrically (``P(high + 1 + k) = P(above) (1 - rho) rho**k``, with
    ``rho = exp(-10 / (high - low + 1))``: the tail's scale is a tenth of the
    range), so that it is a probability over all integers: a held-out row with
    a new extreme gets a finite ``score_samples``, the lower the farther out,
    rather than an error. Training gives the tail categories little
    probability; draws falling there are redrawn into the range unless
    ``bound_outputs=False`` (then they are ``low - 1`` or ``high + 1``).

    The float matrix holds the values themselves (so means and draws are
    values, and the decoder exports to ONNX); inside, ``v`` is category ``v -
    low + 1``.

    Parameters
    ----------
    low, high : list of int
        Each column's smallest and largest training value.
    """

    name = "discrete"
    numeric = True

    def __init__(self, low, high):
        self.low = [int(v) for v in low]
        self.high = [int(v) for v in high]
        super().__init__([list(range(lo - 1, hi + 2)) for lo, hi in zip(self.low, self.high)])
        widths = torch.tensor([hi - lo + 1 for lo, hi in zip(self.low, self.high)],
                              dtype=torch.float64)
        self.register_buffer("_top", widths + 1, persistent=False)  # the category "above"
        self.register_buffer("_log_rho", -10.0 / widths, persistent=False)
        self.register_buffer("_origin", torch.tensor(self.low, dtype=torch.float64) - 1,
                             persistent=False)  # the value of category 0

    @classmethod
    def from_columns(cls, columns, options):
        values = [_whole_numbers(column, f"column {getattr(column, 'name', None)!r}")
                  for column in columns]
        values = [v[~np.isnan(v)] for v in values]
        if any(v.size == 0 for v in values):
            raise ValueError("A column has no values to learn a range of whole numbers from.")
        return cls([v.min() for v in values], [v.max() for v in values])

    def encode(self, values, names):
        self.check_support(values, names)
        return values

    def check_support(self, values, names):
        for j in range(values.shape[1]):
            _whole_numbers(values[:, j], where(names, j))

    def encode_unseen(self, values, names):
        # Every whole number has a probability (the tails): none is unseen.
        return Likelihood.encode_unseen(self, values, names)

    def decode(self, values):
        return Likelihood.decode(self, values)

    def output_range(self, low, high):
        # The training range: draws in the tails are redrawn.
        return low, high

    def _value(self, codes):
        return codes + self._layout("_origin", codes.device).to(codes.dtype)

    def _codes(self, x):
        """Each value's category, the tails' values in the tails' categories."""
        top = self._layout("_top", x.device).to(x.dtype)
        codes = x - self._layout("_origin", x.device).to(x.dtype)
        return torch.minimum(torch.maximum(codes, torch.zeros_like(top)), top), codes

    def network_input(self, x):
        return super().network_input(self._codes(x)[0])

    def log_prob_terms(self, params, x):
        inside, codes = self._codes(x)
        terms = super().log_prob_terms(params, inside)
        log_rho = self._layout("_log_rho", x.device).to(terms.dtype)
        tail = (inside == 0) | (inside == self._layout("_top", x.device).to(x.dtype))
        # log(1 - rho) for a value in a tail, and log(rho) per step beyond its first.
        extra = torch.where(tail, torch.log(-torch.expm1(log_rho)), 0.0)
        return terms + extra + (codes - inside).abs().to(terms.dtype) * log_rho

    def _expected(self, params, weights=None):
        """Each column's expected category under ``params`` (or, with
        importance ``weights`` over their first axis, under the mixture)."""
        _, exp, sums = self._normalise(params)
        share = exp / self._per_input(sums)
        if weights is not None:
            share = (weights.unsqueeze(-1) * share).sum(0)
        column = self._layout("_input_column", params.device)
        offsets = self._layout("_offsets", params.device)
        position = torch.arange(self.n_params, device=params.device) - offsets[column]
        rows = (share * position.to(share.dtype)).reshape(-1, self.n_params)
        out = rows.new_zeros(rows.shape[0], self.n_features).index_add(-1, column, rows)
        return out.reshape(share.shape[:-1] + (self.n_features,))

    def impute(self, params, weights):
        """The mixture's mean (a number, not its most probable value: the
        imputation with the least squared error)."""
        return self._value(self._expected(params, weights))

    def mean(self, params):
        """The expected value (rounded to a whole number for integer
        DataFrame columns by ``inverse_transform``)."""
        return self._value(self._expected(params))

    def sample(self, params, generator):
        return self._value(super().sample(params, generator))


def _whole_numbers(values, label):
    """``values`` (raw, of the column ``label`` names) as float64 whole
    numbers, NaN where missing; a clear error for anything else."""
    if getattr(values, "dtype", None) is not None and values.dtype.kind in "biuf":
        numbers = np.asarray(values, dtype=np.float64)
        bad = np.isinf(numbers)
    else:
        pd = _pandas()
        column = pd.Series(np.asarray(values, dtype=object))
        numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64,
                                                                   na_value=np.nan)
        bad = (np.isnan(numbers) & ~column.isna().to_numpy()) | np.isinf(numbers)
    bad |= ~np.isnan(numbers) & (numbers != np.round(numbers))
    if bad.any():
        raise ValueError(
            f"{label.capitalize()} holds {np.asarray(values, dtype=object)[bad][0]!r}, but "
            "likelihood='discrete' is for whole numbers."
        )
    return numbers


def _check_grouping(n_categories, counts, infrequent):
    """Clear errors for a :class:`Categorical` whose ``counts`` or
    ``infrequent`` codes do not fit its categories."""
    if counts is not None and [len(c) for c in counts] != n_categories:
        raise ValueError(
            f"counts has {[len(c) for c in counts]} entries per column for "
            f"{n_categories} categories; give one count per category."
        )
    if len(infrequent) != len(n_categories):
        raise ValueError(
            f"infrequent has {len(infrequent)} columns for {len(n_categories)}; give "
            "one sequence of codes per column."
        )
    for j, (n, group) in enumerate(zip(n_categories, infrequent)):
        if group and (group[0] < 0 or group[-1] >= n):
            raise ValueError(
                f"infrequent codes {list(group)} of column {j} are not all in 0..{n - 1}."
            )
        if group and (counts is None or min(counts[j][code] for code in group) < 1):
            raise ValueError(
                f"The infrequent categories of column {j} need positive counts, to "
                "share their slot by."
            )


def tally(column):
    """The categories of ``column`` (its distinct non-missing values, sorted)
    and how many rows hold each (an int array): counted, or, for a column of
    distinct values that a distributed fit merged, read from its
    ``attrs["counts"]``."""
    pd = _pandas()
    values = pd.Series(np.asarray(column, dtype=object)).dropna()
    if values.empty:
        raise ValueError(f"Column {getattr(column, 'name', None)!r} has no values to learn categories from.")
    distinct = values.unique()
    try:
        categories = sorted(distinct)
    except TypeError:
        categories = sorted(distinct, key=str)
    counts = getattr(column, "attrs", {}).get("counts")
    weights = None if counts is None else np.asarray(counts, dtype=np.float64)[values.index]
    codes = pd.Index(categories).get_indexer(values)
    counts = np.bincount(codes, weights=weights, minlength=len(categories))
    return categories, np.rint(counts).astype(np.int64)


def infrequent_codes(counts, min_frequency=None, max_categories=None):
    """The codes of the categories, of training ``counts``, that share the
    infrequent slot, chosen as scikit-learn's OneHotEncoder chooses its
    infrequent categories: those in fewer than ``min_frequency`` rows (an int)
    or than that share of the column's observed entries (a float); then,
    where more than ``max_categories`` slots would be left (the infrequent
    slot counting as one), the least frequent until ``max_categories - 1``
    remain outside it (among equally frequent ones, the first in code order
    go first). A tuple, empty when none."""
    counts = np.asarray(counts)
    if min_frequency is None:
        rare = np.zeros(counts.shape, dtype=bool)
    elif isinstance(min_frequency, numbers.Integral):
        rare = counts < min_frequency
    else:
        rare = counts < min_frequency * counts.sum()
    if max_categories is not None and max_categories < counts.size - rare.sum() + 1:
        keep = max_categories - 1
        if keep == 0:
            rare[:] = True
        else:
            rare[np.argsort(counts, kind="mergesort")[:-keep]] = True
    return tuple(int(code) for code in np.flatnonzero(rare))


def category_slots(column, min_frequency=None, max_categories=None):
    """The number of slots (categories, the infrequent ones counting as one)
    that :class:`Categorical` gives ``column``, and its number of observed
    entries."""
    _, counts = tally(column)
    group = infrequent_codes(counts, min_frequency, max_categories)
    return counts.size - len(group) + bool(group), int(counts.sum())


LIKELIHOODS = {
    cls.name: cls
    for cls in (Gaussian, LogNormal, Bernoulli, Poisson, NegativeBinomial,
                ZeroInflatedPoisson, ZeroInflatedNegativeBinomial, Categorical, Discrete)
}


# ---------------------------------------------------------------- covariates


def _known(values, names):
    """A ValueError naming the first covariate column with a missing value."""
    missing = _pandas().isna(_pandas().DataFrame(np.asarray(values, dtype=object))).to_numpy()
    if missing.any():
        j = int(np.flatnonzero(missing.any(axis=0))[0])
        raise ValueError(
            f"{where(names, j).capitalize()} is a covariate and has missing values: a "
            "covariate is an input of the model and must be known for every row. Fill "
            "them in (or give them a category of their own), or drop those rows.")


class _Covariate:
    """What a covariate block is: an input, not a modelled column. Its
    log-probability is 0 (``score_samples`` is then log p(x | covariates)),
    the decoder gets :meth:`conditions` beside the latent code, the encoder
    gets them too when ``encoded``; means, draws and imputations are NaN
    placeholders, which the estimator fills with the covariate values given."""

    covariate = True

    def network_input(self, x):
        return self.conditions(x) if self.encoded else x.new_zeros(x.shape[:-1] + (0,))

    def input_mask(self, mask):
        return mask.new_ones(mask.shape[:-1] + (self.n_inputs,))

    def log_prob(self, params, x):
        return params.new_zeros(torch.broadcast_shapes(params.shape[:-1], x.shape[:-1]))

    def log_prob_terms(self, params, x):
        return self.log_prob(params, x).unsqueeze(-1).expand(
            self.log_prob(params, x).shape + (self.n_features,))

    def mean(self, params):
        return params.new_full(params.shape[:-1] + (self.n_features,), math.nan)

    def sample(self, params, generator):
        return self.mean(params)

    def impute(self, params, weights):
        return self.mean(params[0])


class CovariateCategories(_Covariate, Categorical):
    """Categorical covariates: one-hot over the categories seen in ``fit``
    (pooled across ranks); a category not seen in ``fit`` or a missing value
    is refused. ``encoded``: the encoder sees them too."""

    name = "covariate:categorical"

    def __init__(self, categories, counts=None, encoded=False):
        super().__init__(categories, counts)
        self.encoded = bool(encoded)
        self.n_conditions = self.n_params
        self.n_params, self.n_inputs = 0, self.n_conditions if self.encoded else 0

    @classmethod
    def from_columns(cls, columns, options):
        tallies = [tally(column) for column in columns]
        return cls([categories for categories, _ in tallies],
                   [counts.tolist() for _, counts in tallies],
                   encoded=options.get("encode_covariates", False))

    def encode(self, values, names):
        _known(values, names)
        codes, unseen = self._lookup(values)
        if unseen.any():
            j = int(np.flatnonzero(unseen.any(axis=0))[0])
            shown = sorted({str(v) for v in np.asarray(values[:, j], dtype=object)[unseen[:, j]]})
            raise ValueError(
                f"{where(names, j).capitalize()} is a covariate and has categories not seen "
                f"in fit: {shown[:5]}. The model learnt the effects of the training rows' "
                "categories only: map these to one of them, or refit with rows of them.")
        return codes

    def encode_unseen(self, values, names):
        return self.encode(values, names), np.zeros(self.n_features, dtype=np.int64)

    def conditions(self, x):
        return x.new_zeros(x.shape[:-1] + (self.n_conditions,)).scatter_(-1, self._slots(x), 1)


class CovariateNumbers(_Covariate, Likelihood):
    """Numeric covariates, standardised on the training rows (statistics
    merged across ranks); a missing value is refused. ``encoded``: the
    encoder sees them too."""

    name = "covariate:numeric"

    def __init__(self, n_features, encoded=False):
        super().__init__(n_features)
        self.encoded = bool(encoded)
        self.n_conditions = self.n_features
        self.n_params, self.n_inputs = 0, self.n_features if self.encoded else 0
        self.register_buffer("loc", torch.zeros(n_features, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(n_features, dtype=torch.float64))

    @classmethod
    def from_columns(cls, columns, options):
        return cls(len(columns), encoded=options.get("encode_covariates", False))

    def check_support(self, values, names):
        _known(values, names)

    def statistics(self, X, columns=None):
        return column_moment_sums(X, columns)

    @classmethod
    def merge_statistics(cls, parts):
        return merge_moments(parts)

    def set_statistics(self, stats):
        n, loc, m2 = stats
        scale = np.sqrt(m2 / np.maximum(n, 1))
        scale[~(scale > 0)] = 1.0
        self.loc.copy_(torch.as_tensor(loc))
        self.scale.copy_(torch.as_tensor(scale))

    def conditions(self, x):
        return (x - self.loc.to(x.dtype)) / self.scale.to(x.dtype)


COVARIATES = {cls.name: cls for cls in (CovariateCategories, CovariateNumbers)}
# Every built-in by name: the likelihoods a user may name, and the covariates.
BUILT_INS = {**LIKELIHOODS, **COVARIATES}


def describe(factory):
    """A likelihood (name, class or factory) as error messages name it."""
    if isinstance(factory, str):
        return repr(factory)
    inner = getattr(factory, "func", factory)  # functools.partial
    return getattr(inner, "__qualname__", None) or type(inner).__name__


def build_likelihood(factory, columns, options):
    """The likelihood for the training ``columns`` (raw values) of one block.

    ``factory`` is a built-in's name, a :class:`Likelihood` subclass (built by
    its ``from_columns``), or any callable that takes the number of columns and
    returns a :class:`Likelihood`.
    """
    if isinstance(factory, str):
        factory = BUILT_INS[factory]
    if isinstance(factory, Likelihood):
        raise TypeError(
            f"likelihood is a {type(factory).__name__} instance; pass its class (or a "
            "factory such as functools.partial(MyLikelihood, df=3)), so that each fit "
            "builds one for its columns."
        )
    if isinstance(factory, type) and issubclass(factory, Likelihood):
        head = factory.from_columns(columns, options)
    else:
        head = factory(len(columns))
    if not isinstance(head, Likelihood):
        raise TypeError(
            f"likelihood {describe(factory)} returned {type(head).__name__}; a "
            "likelihood must be a subclass of skvae.Likelihood (or a factory "
            "returning an instance of one)."
        )
    if head.n_features != len(columns):
        raise ValueError(
            f"likelihood {describe(factory)} was built for {len(columns)} columns "
            f"but reports n_features={head.n_features}."
        )
    return head


class Observation(nn.Module):
    """The joint likelihood of a row: independent likelihoods over blocks of columns.

    Parameters
    ----------
    blocks : list of (Likelihood, list of int)
        Each likelihood with the indices of the data columns it covers. The blocks
        partition the columns.
    """

    def __init__(self, blocks):
        super().__init__()
        self.likelihoods = nn.ModuleList([lik for lik, _ in blocks])
        self.columns = [list(cols) for _, cols in blocks]
        self.n_features = sum(len(cols) for cols in self.columns)
        self.n_params = sum(lik.n_params for lik in self.likelihoods)
        self.n_inputs = sum(lik.n_inputs for lik in self.likelihoods)
        # One block over every column in order: the parts need no splitting.
        self.whole = len(blocks) == 1 and self.columns[0] == list(range(self.n_features))
        self._register_support()

    @property
    def covariate_columns(self):
        """The columns that are covariates (inputs, not modelled), in order."""
        return sorted(j for lik, cols in zip(self.likelihoods, self.columns)
                      if getattr(lik, "covariate", False) for j in cols)

    @property
    def n_conditions(self):
        """The decoder's inputs beside the latent code: the covariates'."""
        return sum(getattr(lik, "n_conditions", 0) for lik in self.likelihoods
                   if getattr(lik, "covariate", False))

    def conditions(self, x):
        """The covariates of rows ``x`` as the decoder takes them (one-hot
        categories, standardised numbers); None for a model without any."""
        if not any(getattr(lik, "covariate", False) for lik in self.likelihoods):
            return None
        parts = [lik.conditions(xb) for lik, xb in zip(self.likelihoods, self._split_x(x))
                 if getattr(lik, "covariate", False)]
        return torch.cat(parts, dim=-1)

    def _register_support(self):
        """Buffers for each column's training support (see :meth:`bound`):
        unbounded until :meth:`fit_data` learns it."""
        for name, value in [("support_low", -math.inf), ("support_high", math.inf)]:
            self.register_buffer(name, torch.full((self.n_features,), value,
                                                  dtype=torch.float64))
        self.register_buffer("support_integer", torch.zeros(self.n_features, dtype=torch.bool))

    def __setstate__(self, state):
        super().__setstate__(state)
        if "support_low" not in self._buffers:  # pickled by an skvae without them
            self._register_support()

    def _split_x(self, x):
        if self.whole:
            return [x]
        return [x[..., cols] for cols in self.columns]

    def _split_params(self, params):
        if self.whole:
            return [params]
        sizes = [lik.n_params for lik in self.likelihoods]
        return torch.split(params, sizes, dim=-1)

    def _join(self, parts, like):
        if self.whole:
            return parts[0]
        out = like.new_empty(like.shape[:-1] + (self.n_features,))
        for part, cols in zip(parts, self.columns):
            out[..., cols] = part.to(out.dtype)
        return out

    def fit_data(self, X, collective=None):
        """Each likelihood reads its own columns of ``X`` (no copy of ``X``).

        Under a distributed ``collective`` (see :mod:`skvae._distributed`) the
        ranks' statistics are merged, so every rank sets those of all rows. A
        likelihood that overrides ``fit_data`` itself keeps its own shard's
        constants, and training starts from rank 0's.
        """
        for lik, cols in zip(self.likelihoods, self.columns):
            columns = None if self.whole else cols
            if collective is None or not collective.distributed:
                lik.fit_data(X, columns)
                continue
            mergeable = type(lik).fit_data is Likelihood.fit_data
            parts = collective.all_gather(lik.statistics(X, columns) if mergeable else None)
            if parts[0] is None:
                lik.fit_data(X, columns)
            else:
                lik.set_statistics(type(lik).merge_statistics(parts))
        self._fit_support(X, collective)

    def _fit_support(self, X, collective=None):
        """Learn each numeric column's support from the training matrix ``X``
        (over every rank's rows): its range, and whether it holds whole numbers
        only, and what each likelihood makes of it (:meth:`Likelihood.output_range`)."""
        low, high, integer = column_ranges(X)
        if collective is not None and collective.distributed:
            low, high, integer = merge_ranges(collective.all_gather((low, high, integer)))
        observed = low <= high
        low, high = np.where(observed, low, -np.inf), np.where(observed, high, np.inf)
        for lik, cols in zip(self.likelihoods, self.columns):
            low[cols], high[cols] = lik.output_range(low[cols], high[cols])
        self.support_low.copy_(torch.as_tensor(low))
        self.support_high.copy_(torch.as_tensor(high))
        self.support_integer.copy_(torch.as_tensor(integer & np.isfinite(low)))

    def _range(self, like):
        """The columns' ranges in ``like``'s dtype and device, rounded inward
        (a float32 bound may round past the float64 one)."""
        low, high = self.support_low.to(like.device), self.support_high.to(like.device)
        low_, high_ = low.to(like.dtype), high.to(like.dtype)
        # A step of about one unit in the last place (nextafter does not
        # export to ONNX); where the bound is exact, nothing moves.
        step = torch.finfo(like.dtype).eps
        low_ = torch.where(low_.to(low.dtype) < low, low_ + low_.abs() * step, low_)
        high_ = torch.where(high_.to(high.dtype) > high, high_ - high_.abs() * step, high_)
        return low_, high_

    def bound(self, x, draws=False):
        """``x`` (values of every column) moved into each column's training
        range; for ``draws``, also rounded where the column holds whole numbers."""
        low, high = self._range(x)
        x = torch.minimum(torch.maximum(x, low), high)
        if draws:
            x = torch.where(self.support_integer.to(x.device), x.round(), x)
        return x

    def network_input(self, x, mask=None):
        """What the encoder sees of rows ``x``. With a ``mask`` of observed
        entries (see :func:`observed`), missing entries are set to 0 in the
        network's input space: a standardised column's mean, "no category"."""
        if mask is None:
            parts = [lik.network_input(p) for lik, p in zip(self.likelihoods, self._split_x(x))]
        else:
            filled = torch.where(mask, x, 0)
            parts = [
                lik.network_input(p) * lik.input_mask(m).to(x.dtype)
                for lik, p, m in zip(self.likelihoods, self._split_x(filled),
                                     self._split_x(mask))
            ]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def log_prob(self, params, x, mask=None):
        """Log-probability of each row, summed over all columns; with a ``mask``
        of observed entries, over the observed ones only."""
        if mask is None:
            pairs = zip(self.likelihoods, self._split_params(params), self._split_x(x))
            return sum(lik.log_prob(p, xb) for lik, p, xb in pairs)
        filled = torch.where(mask, x, 0)
        blocks = zip(self.likelihoods, self._split_params(params), self._split_x(filled),
                     self._split_x(mask))
        return sum(_masked_log_prob(lik, p, xb, m) for lik, p, xb, m in blocks)

    def mean(self, params, bounded=True):
        """Each likelihood's mean; when ``bounded``, within the training range."""
        parts = [lik.mean(p) for lik, p in zip(self.likelihoods, self._split_params(params))]
        out = self._join(parts, params)
        return self.bound(out) if bounded else out

    # Draws outside a column's training range are drawn again at most this many
    # times before the last one is moved to the range's end.
    REDRAWS = 20

    def sample(self, params, generator, bounded=True):
        """A draw of every column. When ``bounded``, each entry comes from its
        likelihood truncated to the column's training range: an entry that
        falls outside is drawn again from the same p(x_j | z) (the columns are
        independent given z), so the draws follow the model within the range
        rather than piling up at its ends; whole-number columns give whole
        numbers. No random number is spent when every draw is inside."""

        def draw():
            return self._join([lik.sample(p, generator)
                               for lik, p in zip(self.likelihoods, self._split_params(params))],
                              params)

        x = draw()
        if not bounded:
            return x
        low, high = self._range(x)
        # A column constant in training (its range a point) is that point: no
        # draw would land on it, so it is moved there rather than drawn again.
        spread = low < high
        for _ in range(self.REDRAWS):
            outside = ((x < low) | (x > high)) & spread
            if not bool(outside.any()):
                break
            x = torch.where(outside, draw(), x)
        return self.bound(x, draws=True)

    def impute(self, params, weights, bounded=True):
        """Each likelihood's imputation of its columns (see
        :meth:`Likelihood.impute`); when ``bounded``, within the training range."""
        parts = [lik.impute(p, weights)
                 for lik, p in zip(self.likelihoods, self._split_params(params))]
        out = self._join(parts, params[0])
        return self.bound(out) if bounded else out

    def check(self, params, x, generator):
        """Raise a clear error when a likelihood's outputs have the wrong shapes.

        ``params`` are decoder outputs and ``x`` data rows, on a small batch;
        run once when a model is built, so a user's likelihood that returns the
        wrong shape is named before training starts.
        """
        n_rows = x.shape[0]
        pairs = zip(self.likelihoods, self._split_params(params), self._split_x(x))
        for lik, p, xb in pairs:
            # Importance samples come as a leading dimension of the parameters.
            samples = p.expand((3,) + p.shape)
            expected = {
                "network_input": (n_rows, lik.n_inputs),
                "log_prob": (n_rows,),
                "mean": (n_rows, lik.n_features),
                "sample": (n_rows, lik.n_features),
                "log_prob over 3 latent samples": (3, n_rows),
            }
            calls = {
                "network_input": lambda: lik.network_input(xb),
                "log_prob": lambda: lik.log_prob(p, xb),
                "mean": lambda: lik.mean(p),
                "sample": lambda: lik.sample(p, generator),
                "log_prob over 3 latent samples": lambda: lik.log_prob(samples, xb),
            }
            for method, call in calls.items():
                check_output(f"likelihood {describe(type(lik))}.{method}", call,
                              expected[method])


def check_output(what, call, shape):
    """Run ``call`` and check it returns a tensor of ``shape``."""
    try:
        out = call()
    except NotImplementedError:
        raise TypeError(f"{what} is not implemented.") from None
    except Exception as exc:
        raise ValueError(f"{what} failed on a batch of {shape[0]} rows: "
                         f"{type(exc).__name__}: {exc}") from exc
    if not torch.is_tensor(out):
        raise TypeError(f"{what} returned {type(out).__name__}; expected a tensor of "
                        f"shape {shape}.")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{what} returned a tensor of shape {tuple(out.shape)}; "
                         f"expected {tuple(shape)}.")
    return out


def observed(x):
    """The mask of observed (not NaN) entries of ``x``."""
    return ~torch.isnan(x)


def _no_mask(x):
    return None


def observed_mask(missing):
    """How a batch's mask is found, for data that have missing entries
    (``missing``: :func:`observed`) or not (a function giving None, so that
    complete data take the path, and give the results, of a model that knows
    nothing of missing values)."""
    return observed if missing else _no_mask


def _masked_log_prob(likelihood, params, x, mask):
    """``likelihood``'s log-probability of the observed entries ``mask`` of ``x``."""
    if likelihood.supports_missing:
        return (likelihood.log_prob_terms(params, x) * mask.to(params.dtype)).sum(-1)
    if not bool(mask.all()):
        raise ValueError(
            f"likelihood {describe(type(likelihood))} cannot score rows with missing "
            "entries in its columns: implement its log_prob_terms (see skvae.Likelihood)."
        )
    return likelihood.log_prob(params, x)
