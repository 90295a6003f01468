"""Observation models: small torch heads mapping decoder outputs to log-probabilities.

Each likelihood covers a block of columns of the (numeric) data matrix. It knows

* how to turn its raw columns into network input (``network_input``),
* how many decoder outputs it needs (``n_params``),
* the log-probability of its columns given those outputs (``log_prob``, summed over
  its columns, broadcasting over leading sample dimensions),
* the distribution's mean (``mean``) and how to draw from it (``sample``) with an
  explicit :class:`torch.Generator`, so that sampling never touches torch's global
  random state.

They are chosen by name from :data:`LIKELIHOODS`. The log-probabilities are written
out rather than taken from :mod:`torch.distributions`: sampling there cannot take a
generator, and argument validation costs time on every training step.

Nothing here imports scikit-learn or knows about NumPy arrays beyond the support
checks, which receive a NumPy array and raise :class:`ValueError`.
"""

import math

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
    def build(cls, n_features, options):
        """Construct from the estimator's ``options`` (a dict); most take none."""
        return cls(n_features)

    @staticmethod
    def check_support(X, where):
        """Raise ValueError if the NumPy array ``X`` is outside the support."""

    def fit_data(self, X):
        """Store data-dependent constants (scaling) from the training array ``X``."""

    def network_input(self, x):
        return x


class Gaussian(Likelihood):
    """Normal likelihood with a learned variance per feature.

    The data are standardised inside (the location and scale are buffers fitted on
    the training data), the decoder predicts the standardised mean, and the
    log-density is reported in the original units. The standard deviation of each
    feature is a free parameter, floored at ``sqrt(min_variance)`` in standardised
    units so that a (nearly) constant feature cannot drive the likelihood to
    infinity.
    """

    name = "gaussian"

    def __init__(self, n_features, min_variance=1e-3):
        super().__init__(n_features)
        self.min_variance = float(min_variance)
        self.register_buffer("loc", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.log_variance = nn.Parameter(torch.zeros(n_features))

    @classmethod
    def build(cls, n_features, options):
        return cls(n_features, min_variance=options["min_variance"])

    def fit_data(self, X):
        loc = X.mean(axis=0)
        scale = X.std(axis=0)
        # As StandardScaler: a constant feature keeps its scale.
        scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(np.abs(loc), 1)] = 1.0
        self.loc.copy_(torch.as_tensor(loc, dtype=self.loc.dtype))
        self.scale.copy_(torch.as_tensor(scale, dtype=self.scale.dtype))

    def network_input(self, x):
        return (x - self.loc) / self.scale

    def std(self):
        """Standard deviation of each feature, in standardised units."""
        return torch.sqrt(self.log_variance.exp() + self.min_variance)

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


class Bernoulli(Likelihood):
    """Bernoulli likelihood on [0, 1] data, parametrised by logits.

    For grey levels strictly between 0 and 1 the log-probability is the negative
    binary cross-entropy, as is usual for image VAEs; it is not a normalised
    density for continuous values.
    """

    name = "bernoulli"

    @staticmethod
    def check_support(X, where):
        if X.size and (X.min() < 0 or X.max() > 1):
            raise ValueError(
                f"likelihood='bernoulli' needs values in [0, 1]; {where} has values "
                f"in [{X.min():g}, {X.max():g}]. Scale the data to [0, 1] (for "
                "example with MinMaxScaler) or use likelihood='gaussian'."
            )

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


LIKELIHOODS = {cls.name: cls for cls in (Gaussian, Bernoulli)}


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
        for lik, cols in zip(self.likelihoods, self.columns):
            lik.fit_data(X[:, cols])

    def check_support(self, X, where):
        for lik, cols in zip(self.likelihoods, self.columns):
            lik.check_support(X[:, cols], where)

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
