"""The objective (skvae._elbo): KL terms, bounds, the KL weight schedule."""

import math

import numpy as np
import torch

from skvae._elbo import Objective, gaussian_kl, importance_weighted_bound, kl_weight
from skvae._likelihoods import Gaussian, Observation
from skvae._modules import VAEModule, mlp


def make_module(n_features=5, n_components=2):
    torch.manual_seed(0)
    obs = Observation([(Gaussian(n_features), range(n_features))])
    return VAEModule(
        obs, mlp(n_features, (16,), 2 * n_components), mlp(n_components, (16,), n_features),
        n_components,
    )


def test_gaussian_kl_matches_torch_distributions():
    mean, log_var = torch.randn(6, 3), torch.randn(6, 3)
    q = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(gaussian_kl(mean, log_var), expected)


def test_gaussian_kl_is_zero_at_the_prior():
    assert torch.all(gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)) == 0)


def test_kl_weight_schedule():
    assert [kl_weight(e, 2.0, 4) for e in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    assert kl_weight(0, 0.5, 0) == 0.5


def test_importance_weighted_bound_is_log_mean_exp():
    log_w = torch.tensor([[0.0, 1.0], [math.log(3.0), 1.0]])
    np.testing.assert_allclose(importance_weighted_bound(log_w).numpy(), [math.log(2.0), 1.0], rtol=1e-6)


# ------------------------------------------------------------------ Objective


def test_single_sample_bound_is_reconstruction_minus_kl():
    module = make_module()
    x = torch.randn(7, 5)
    out = Objective()(module, x, torch.randn(1, 7, 2), kl_weight=0.3)
    torch.testing.assert_close(out.bound, out.reconstruction - out.kl)
    torch.testing.assert_close(out.loss, -(out.reconstruction - 0.3 * out.kl).mean())


def test_importance_weighted_bound_is_tighter_than_elbo():
    module = make_module()
    x = torch.randn(50, 5)
    torch.manual_seed(1)
    elbo = Objective()(module, x, torch.randn(1, 50, 2)).bound
    iwae = Objective(n_samples=200)(module, x, torch.randn(200, 50, 2)).bound
    assert iwae.mean() > elbo.mean()


def test_shared_noise_broadcasts_over_rows():
    module = make_module()
    x = torch.randn(4, 5)
    noise = torch.randn(3, 1, 2)
    objective = Objective(n_samples=3)
    together = objective(module, x, noise).bound
    alone = torch.cat([objective(module, x[i : i + 1], noise).bound for i in range(4)])
    torch.testing.assert_close(together, alone)
