"""Observation models: small torch heads mapping decoder outputs to log-probabilities.

Each likelihood covers a block of columns of the (numeric) data matrix. It knows

* how to turn its raw columns into network input (``network_input``),
* how many decoder outputs it needs (``n_params``),
* the log-probability of its columns given those outputs (``log_prob``, summed over
  its columns, broadcasting over leading sample dimensions),
* the distribution's mean (``mean``) and how to draw from it (``sample``) with an
  explicit :class:`torch.Generator`, so that sampling never touches torch's global
  random state.

Which values each likelihood accepts is checked once, on the NumPy side, in
:mod:`skvae._tables`.

They are chosen by name from :data:`LIKELIHOODS`. The log-probabilities are written
out rather than taken from :mod:`torch.distributions`: sampling there cannot take a
generator, and argument validation costs time on every training step.

Nothing here imports scikit-learn; ``fit_data`` reads training statistics from a
NumPy array.
"""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class Likelihood(nn.Module):
    """Base class: a likelihood over ``n_features`` columns.

    Subclasses set ``n_params`` and ``n_inputs`` and implement ``log_prob``,
    ``mean`` and ``sample``.
    """

    name = "base"

    def __init__(self, n_features):
        super().__init__()
        self.n_features = n_features
        self.n_params = n_features
        self.n_inputs = n_features

    @classmethod
    def build(cls, specs, options):
        """Construct for the columns ``specs`` (ColumnSpec list) and the estimator's
        ``options`` (a dict); most need only the number of columns."""
        return cls(len(specs))

    def fit_data(self, X, columns=None):
        """Store data-dependent constants (scaling) from the training array ``X``.

        ``columns`` picks this likelihood's columns of ``X`` (all when None);
        statistics are read in row chunks, so no copy of ``X`` is made.
        """

    def network_input(self, x):
        return x


class Gaussian(Likelihood):
    """Normal likelihood with a learned variance per feature.

    The data are standardised inside (the location and scale are buffers fitted on
    the training data), the decoder predicts the standardised mean, and the
    log-density is reported in the original units. The variance of each feature
    is a free parameter with a floor, in standardised units, of the larger of

    * ``min_variance`` (a share of the feature's training variance), and
    * ``gap**2 / 12``, the variance of a uniform spread over the smallest gap
      between the feature's distinct training values: data recorded on a grid
      (grey levels, rounded measurements) cannot then earn an unbounded density
      by collapsing onto grid points, which would make held-out rows off those
      points score minus thousands of nats.
    """

    name = "gaussian"
    _GAP_ROWS = 10_000

    def __init__(self, n_features, min_variance=1e-3):
        super().__init__(n_features)
        self.min_variance = float(min_variance)
        self.register_buffer("loc", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.register_buffer("variance_floor", torch.full((n_features,), self.min_variance))
        self.log_variance = nn.Parameter(torch.zeros(n_features))

    @classmethod
    def build(cls, specs, options):
        return cls(len(specs), min_variance=options["min_variance"])

    def fit_data(self, X, columns=None):
        if columns is None:
            groups = [slice(a, b) for a, b in _column_ranges(X.shape[1], X.shape[0])]
        else:
            columns = np.asarray(columns)
            groups = [columns[a:b] for a, b in _column_ranges(len(columns), X.shape[0])]
        parts = _map_threads(lambda group: self._statistics(X, group), groups)
        loc, scale, gap = (np.concatenate(values) for values in zip(*parts))
        floor = np.maximum(self.min_variance, (gap / scale) ** 2 / 12)
        for buffer, value in [(self.loc, loc), (self.scale, scale), (self.variance_floor, floor)]:
            buffer.copy_(torch.as_tensor(value, dtype=buffer.dtype))

    def _statistics(self, X, columns):
        """Location, scale and smallest value gap of the ``columns`` of ``X``."""
        loc, scale = column_moments(X, columns)
        # As StandardScaler: a constant feature keeps its scale.
        constant = scale < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(loc), 1)
        scale[constant] = 1.0
        gap = _smallest_gaps(_take(X[:: max(1, len(X) // self._GAP_ROWS)], columns))
        # A column whose few other values all missed the row sample (a pixel
        # lit in a handful of images) would get no floor, and those rows would
        # score thousands of nats too low: read its gap from all its rows.
        missed = np.flatnonzero((gap == 0) & ~constant)
        if missed.size:
            picked = np.arange(X.shape[1])[columns][missed]
            gap[missed] = _smallest_gaps(X[:, picked])
        return loc, scale, gap

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

    def mean(self, params):
        return self.loc + self.scale * params

    def sample(self, params, generator):
        noise = torch.randn(params.shape, generator=generator, device=params.device)
        return self.mean(params + noise * self.std())


_CHUNK_ROWS = 16384


def _take(X, columns):
    return X if columns is None else X[:, columns]


# Statistics of large arrays are computed over groups of columns in parallel
# threads (NumPy releases the GIL), as many as torch's intra-op threads: one in
# a joblib worker, so nothing is oversubscribed.
_PARALLEL_MIN_VALUES = 2**20


def _column_ranges(n_columns, n_rows):
    """(start, stop) ranges splitting ``n_columns`` columns into groups, one per
    thread when the array is large enough to be worth it."""
    n_groups = 1
    if n_rows * n_columns >= _PARALLEL_MIN_VALUES:
        n_groups = max(1, min(torch.get_num_threads(), n_columns))
    bounds = np.linspace(0, n_columns, n_groups + 1).round().astype(int)
    return list(zip(bounds[:-1], bounds[1:]))


def _map_threads(function, items):
    if len(items) == 1:
        return [function(items[0])]
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(function, items))


def column_moments(X, columns=None, transform=None):
    """Mean and (population) standard deviation of each column, as float64.

    Reads ``X`` in chunks of rows (passed through ``transform``, in float64, if
    given) and merges the chunks' moments with Chan et al.'s pairwise update, so
    memory beyond ``X`` is a chunk. A float32 chunk is not converted: its
    deviations from the chunk's mean are taken in float32 and summed in float64,
    which is accurate to float32's precision (about 1e-7 relative) at a third of
    the cost of a float64 copy; float64 input matches a two-pass float64
    computation to rounding.
    """
    n_total, mean, m2 = 0, 0.0, 0.0
    for start in range(0, X.shape[0], _CHUNK_ROWS):
        block = _take(X[start : start + _CHUNK_ROWS], columns)
        if transform is not None:
            block = transform(np.asarray(block, dtype=np.float64))
        elif block.dtype not in (np.float32, np.float64):
            block = block.astype(np.float64)
        n = block.shape[0]
        centre = block.mean(axis=0, dtype=np.float64).astype(block.dtype)
        deviation = block - centre
        shift = deviation.sum(axis=0, dtype=np.float64)  # the centre's rounding
        block_mean = centre.astype(np.float64) + shift / n
        np.square(deviation, out=deviation)
        block_m2 = np.maximum(deviation.sum(axis=0, dtype=np.float64) - shift**2 / n, 0.0)
        delta = block_mean - mean
        n_new = n_total + n
        mean = mean + delta * (n / n_new)
        m2 = m2 + block_m2 + np.square(delta) * (n_total * n / n_new)
        n_total = n_new
    return np.asarray(mean, dtype=np.float64), np.sqrt(np.asarray(m2) / n_total)


def _smallest_gaps(X):
    """Smallest positive difference between distinct values of each column (0 if
    the column has fewer than two distinct values)."""
    # Sorting in the data's own precision is exact; the differences are taken in
    # float64.
    ordered = np.sort(X, axis=0).astype(np.float64)
    steps = np.diff(ordered, axis=0)
    steps[steps <= 0] = np.inf
    gaps = steps.min(axis=0, initial=np.inf)
    gaps[~np.isfinite(gaps)] = 0.0
    return gaps


class Bernoulli(Likelihood):
    """Bernoulli likelihood on [0, 1] data, parametrised by logits.

    For grey levels strictly between 0 and 1 the log-probability is the negative
    binary cross-entropy, as is usual for image VAEs; it is not a normalised
    density for continuous values.
    """

    name = "bernoulli"

    def network_input(self, x):
        return 2 * x - 1

    def log_prob(self, params, x):
        return -F.binary_cross_entropy_with_logits(
            params, x.expand_as(params), reduction="none"
        ).sum(-1)

    def mean(self, params):
        return torch.sigmoid(params)

    def sample(self, params, generator):
        return torch.bernoulli(self.mean(params), generator=generator)


class _Standardised(Likelihood):
    """Base for counts: the network sees log1p(x), standardised on the training data."""

    def __init__(self, n_features):
        super().__init__(n_features)
        self.register_buffer("input_loc", torch.zeros(n_features))
        self.register_buffer("input_scale", torch.ones(n_features))

    def fit_data(self, X, columns=None):
        loc, scale = column_moments(X, columns, transform=np.log1p)
        scale[scale == 0] = 1.0
        self.input_loc.copy_(torch.as_tensor(loc))
        self.input_scale.copy_(torch.as_tensor(scale))

    def network_input(self, x):
        return (torch.log1p(x) - self.input_loc) / self.input_scale


_MAX_LOG_RATE = 20.0


class Poisson(_Standardised):
    """Poisson likelihood for counts, parametrised by the log-rate."""

    name = "poisson"

    def log_prob(self, params, x):
        log_rate = params.clamp(max=_MAX_LOG_RATE)
        return (x * log_rate - log_rate.exp() - torch.lgamma(x + 1)).sum(-1)

    def mean(self, params):
        return params.clamp(max=_MAX_LOG_RATE).exp()

    def sample(self, params, generator):
        return torch.poisson(self.mean(params), generator=generator)


class NegativeBinomial(_Standardised):
    """Negative binomial for over-dispersed counts: mean from the decoder, and a
    learned inverse dispersion ``theta`` per feature (variance mu + mu^2 / theta)."""

    name = "negbinom"

    def __init__(self, n_features):
        super().__init__(n_features)
        self.log_theta = nn.Parameter(torch.zeros(n_features))

    def theta(self):
        return self.log_theta.clamp(-10.0, 10.0).exp()

    def log_prob(self, params, x):
        log_mu = params.clamp(max=_MAX_LOG_RATE)
        theta = self.theta()
        log_theta_mu = torch.logaddexp(theta.log(), log_mu)
        return (
            torch.lgamma(x + theta)
            - torch.lgamma(theta)
            - torch.lgamma(x + 1)
            + theta * (theta.log() - log_theta_mu)
            + x * (log_mu - log_theta_mu)
        ).sum(-1)

    def mean(self, params):
        return params.clamp(max=_MAX_LOG_RATE).exp()

    def sample(self, params, generator):
        # A gamma-Poisson mixture. torch's gamma sampler takes no generator, so it
        # runs on a forked global state seeded from ``generator``.
        seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        theta = self.theta().expand_as(params)
        with torch.random.fork_rng(devices=[params.device] if params.is_cuda else []):
            torch.manual_seed(seed)
            rate = torch.distributions.Gamma(theta, theta / self.mean(params)).sample()
        return torch.poisson(rate, generator=generator)


class Categorical(Likelihood):
    """Categorical (softmax) likelihood. Each column holds integer codes
    0..n_categories-1; the network sees them one-hot encoded."""

    name = "categorical"

    def __init__(self, n_categories):
        super().__init__(len(n_categories))
        self.n_categories = list(n_categories)
        self.n_params = self.n_inputs = sum(self.n_categories)

    @classmethod
    def build(cls, specs, options):
        return cls([len(spec.categories) for spec in specs])

    def _columns(self, params):
        return torch.split(params, self.n_categories, dim=-1)

    def network_input(self, x):
        codes = x.long()
        return torch.cat(
            [F.one_hot(codes[..., j], n).to(x.dtype) for j, n in enumerate(self.n_categories)],
            dim=-1,
        )

    def log_prob(self, params, x):
        codes = x.long()
        total = 0
        for j, logits in enumerate(self._columns(params)):
            log_p = torch.log_softmax(logits, dim=-1)
            index = codes[..., j : j + 1].expand(log_p.shape[:-1] + (1,))
            total = total + log_p.gather(-1, index).squeeze(-1)
        return total

    def mean(self, params):
        """The most probable category's code (the mode) of each column."""
        return torch.stack(
            [logits.argmax(-1).to(params.dtype) for logits in self._columns(params)], dim=-1
        )

    def sample(self, params, generator):
        draws = [
            torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)
            for logits in self._columns(params)
        ]
        return torch.stack(draws, dim=-1).to(params.dtype)


LIKELIHOODS = {
    cls.name: cls for cls in (Gaussian, Bernoulli, Poisson, NegativeBinomial, Categorical)
}


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
        self._whole = len(blocks) == 1 and self.columns[0] == list(range(self.n_features))

    def _split_x(self, x):
        if self._whole:
            return [x]
        return [x[..., cols] for cols in self.columns]

    def _split_params(self, params):
        if self._whole:
            return [params]
        sizes = [lik.n_params for lik in self.likelihoods]
        return torch.split(params, sizes, dim=-1)

    def _join(self, parts, like):
        if self._whole:
            return parts[0]
        out = like.new_empty(like.shape[:-1] + (self.n_features,))
        for part, cols in zip(parts, self.columns):
            out[..., cols] = part.to(out.dtype)
        return out

    def fit_data(self, X):
        """Each likelihood reads its own columns of ``X`` (no copy of ``X``)."""
        for lik, cols in zip(self.likelihoods, self.columns):
            lik.fit_data(X, None if self._whole else cols)

    def network_input(self, x):
        parts = [lik.network_input(p) for lik, p in zip(self.likelihoods, self._split_x(x))]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def log_prob(self, params, x):
        """Log-probability of each row, summed over all columns."""
        pairs = zip(self.likelihoods, self._split_params(params), self._split_x(x))
        return sum(lik.log_prob(p, xb) for lik, p, xb in pairs)

    def mean(self, params):
        parts = [lik.mean(p) for lik, p in zip(self.likelihoods, self._split_params(params))]
        return self._join(parts, params)

    def sample(self, params, generator):
        parts = [
            lik.sample(p, generator)
            for lik, p in zip(self.likelihoods, self._split_params(params))
        ]
        return self._join(parts, params)
