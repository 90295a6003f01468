import math

import numpy as np
import torch

from skvae._elbo import gaussian_kl, importance_weighted_bound, kl_weight


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
