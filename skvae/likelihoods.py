"""The built-in likelihoods, to use by class or to build on.

``VAETransformer(likelihood="negbinom")`` and
``VAETransformer(likelihood=NegativeBinomial)`` build the same model. A
subclass of a built-in keeps what it does not override (its support checks,
coding, statistics, network input, log-probability or sampling) and is passed
as ``likelihood=`` like any :class:`Likelihood` subclass; see the user guide's
"Extending skvae".

Every class here is also reachable by name through
``VAETransformer(likelihood=...)``, with the names of :data:`LIKELIHOODS`.
"""

from ._likelihoods import (
    LIKELIHOODS,
    Bernoulli,
    Categorical,
    Discrete,
    Gaussian,
    Likelihood,
    LogNormal,
    NegativeBinomial,
    Poisson,
    ZeroInflatedNegativeBinomial,
    ZeroInflatedPoisson,
    standard_gamma,
)

__all__ = [
    "LIKELIHOODS",
    "Bernoulli",
    "Categorical",
    "Discrete",
    "Gaussian",
    "Likelihood",
    "LogNormal",
    "NegativeBinomial",
    "Poisson",
    "ZeroInflatedNegativeBinomial",
    "ZeroInflatedPoisson",
    "standard_gamma",
]
