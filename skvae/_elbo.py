"""The evidence lower bound and its pieces, as pure functions of tensors."""

import math
from dataclasses import dataclass

import torch

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class ELBOOutput:
    """What one evaluation of the objective returns.

    Attributes
    ----------
    loss : Tensor
        Scalar to minimise: the negative mean (weighted) bound over the batch.
    bound : Tensor of shape (batch,)
        Per-row lower bound on log p(x) at full KL weight (the ELBO, or the
        importance-weighted bound when more than one sample is drawn).
    reconstruction : Tensor of shape (batch,)
        Mean over samples of log p(x | z).
    kl : Tensor of shape (batch,)
        KL(q(z | x) || p(z)), analytic.
    """

    loss: torch.Tensor
    bound: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def gaussian_kl(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per row, summed over latent dimensions."""
    return 0.5 * (mean.square() + log_var.exp() - log_var - 1).sum(-1)


def standard_normal_log_prob(z):
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * z.square().sum(-1) - z.shape[-1] * _HALF_LOG_2PI


def kl_weight(epoch, beta=1.0, warmup_epochs=0):
    """Weight of the KL term in epoch ``epoch`` (0-based) under linear warm-up.

    Rises linearly from ``beta / warmup_epochs`` in the first epoch to ``beta``
    after ``warmup_epochs`` epochs, then stays at ``beta``.

    >>> [kl_weight(e, beta=1.0, warmup_epochs=4) for e in range(6)]
    [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    """
    if warmup_epochs <= 0:
        return float(beta)
    return float(beta) * min(1.0, (epoch + 1) / warmup_epochs)


def importance_weighted_bound(log_weights):
    """log (1/K sum_k exp(log_weights[k])), the IWAE bound, over the first axis."""
    n_samples = log_weights.shape[0]
    return torch.logsumexp(log_weights, dim=0) - math.log(n_samples)
