"""The training objective: the evidence lower bound, its pieces and its settings.

:class:`Objective` holds every setting of what is optimised (the KL weight
schedule, the number of importance samples and so the kind of bound) as one
value, which the training loop and ``score_samples`` evaluate on a module. The
pieces are pure functions of tensors.
"""

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


def gaussian_kl_terms(mean, log_var):
    """KL(N(mean_j, exp(log_var_j)) || N(0, 1)) per row and latent dimension j."""
    return 0.5 * (mean.square() + log_var.exp() - log_var - 1)


def gaussian_kl(mean, log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per row, summed over latent dimensions."""
    return gaussian_kl_terms(mean, log_var).sum(-1)


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


@dataclass(frozen=True)
class Objective:
    """What training maximises, as one value.

    Parameters
    ----------
    beta : float
        Weight of the KL term after warm-up (beta-VAE; 1 is the true ELBO).
    kl_warmup_epochs : int
        Epochs over which the KL weight rises linearly to ``beta``.
    n_samples : int
        Latent samples per row: 1 gives the ELBO with the analytic KL; more give
        the importance-weighted bound (IWAE, Burda et al. 2015).

    Examples
    --------
    >>> Objective(n_samples=5).importance_weighted
    True
    >>> Objective(beta=2.0, kl_warmup_epochs=2).kl_weight(0)
    1.0
    """

    beta: float = 1.0
    kl_warmup_epochs: int = 0
    n_samples: int = 1

    @property
    def importance_weighted(self):
        return self.n_samples > 1

    def kl_weight(self, epoch):
        """Weight of the KL term in epoch ``epoch`` (0-based, counting earlier fits)."""
        return kl_weight(epoch, self.beta, self.kl_warmup_epochs)

    def warming_up(self, epoch):
        """Whether the KL weight is still rising after epoch ``epoch``."""
        return epoch + 1 < self.kl_warmup_epochs

    def draw_noise(self, n_rows, n_components, generator):
        """Standard normal reparameterisation noise, shape (n_samples, n_rows,
        n_components), from a private generator (on its device)."""
        return torch.randn(
            (self.n_samples, n_rows, n_components), generator=generator,
            device=generator.device,
        )

    def __call__(self, module, x, noise, kl_weight=1.0, mask=None, sample_weight=None):
        """Evaluate the objective of ``module`` on rows ``x``.

        ``noise`` holds standard normal draws of shape (n_samples, batch or 1,
        n_components); ``kl_weight`` weighs the KL (or prior and posterior)
        terms in ``loss``, while ``bound`` always uses weight 1. With a ``mask``
        of observed entries, the encoder sees the observed ones and the bound
        is that on the likelihood of the observed entries. ``sample_weight``
        (one per row, normalised to mean 1 over the training rows) weighs the
        rows' terms in ``loss``; ``bound`` is unweighted.
        """
        mean, log_var = module.encode(x, mask)
        z = mean + (0.5 * log_var).exp() * noise
        log_px = module.observation.log_prob(module.decode(z, module.conditions(x)), x, mask)
        kl = gaussian_kl(mean, log_var)
        if not self.importance_weighted:
            reconstruction = log_px[0]
            loss = -_weighted_mean(reconstruction - kl_weight * kl, sample_weight)
            return ELBOOutput(loss, (reconstruction - kl).detach(), reconstruction.detach(),
                              kl.detach())
        log_prior_ratio = (
            standard_normal_log_prob(z) - standard_normal_log_prob(noise)
            + 0.5 * log_var.sum(-1)
        )
        loss = -_weighted_mean(
            importance_weighted_bound(log_px + kl_weight * log_prior_ratio), sample_weight)
        bound = importance_weighted_bound(log_px + log_prior_ratio).detach()
        return ELBOOutput(loss, bound, log_px.mean(0).detach(), kl.detach())


def _weighted_mean(values, sample_weight):
    """The mean of ``values`` with each row multiplied by its weight (weights
    of mean 1 over all training rows keep a batch's loss an unbiased estimate
    of the weighted objective)."""
    if sample_weight is None:
        return values.mean()
    return (values * sample_weight.to(values.dtype)).mean()
