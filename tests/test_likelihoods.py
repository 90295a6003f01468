"""Likelihoods of the observations (skvae._likelihoods), against scipy."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from skvae._likelihoods import (
    Discrete,
    LogNormal,
    Bernoulli,
    Categorical,
    Gaussian,
    NegativeBinomial,
    Observation,
    Poisson,
    init_args,
    observed,
)
from skvae._statistics import smallest_gaps


def test_gaussian_log_prob_matches_scipy():
    rng = np.random.RandomState(0)
    X = rng.normal(loc=[1.0, -3.0, 10.0], scale=[0.5, 2.0, 7.0], size=(40, 3))
    lik = Gaussian(3, min_variance=1e-3).double()
    lik.fit_data(X)
    with torch.no_grad():
        lik.log_variance.copy_(torch.tensor([0.1, -1.0, 0.5]))
    params = torch.tensor(rng.normal(size=(40, 3)))
    got = lik.log_prob(params, torch.tensor(X)).detach().numpy()
    loc = lik.loc.numpy() + lik.scale.numpy() * params.numpy()
    scale = lik.scale.numpy() * lik.std().detach().numpy()
    expected = stats.norm(loc, scale).logpdf(X).sum(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_gaussian_variance_floor_on_constant_feature():
    X = np.column_stack([np.zeros(10), np.random.RandomState(0).normal(size=10)])
    lik = Gaussian(2, min_variance=1e-2).double()
    lik.fit_data(X)
    assert lik.scale[0] == 1.0
    with torch.no_grad():
        lik.log_variance.fill_(-100.0)
    assert torch.allclose(lik.std(), torch.full((2,), 0.1, dtype=torch.float64))


def test_gaussian_variance_floor_follows_the_grid():
    """Values on a grid of step 0.5 get at least the variance of a uniform step."""
    X = np.column_stack([np.arange(40) % 4 * 0.5, np.random.RandomState(0).normal(size=40)])
    lik = Gaussian(2, min_variance=1e-6).double()
    lik.fit_data(X)
    with torch.no_grad():
        lik.log_variance.fill_(-100.0)
    floor_in_units = (lik.std() * lik.scale).detach().numpy()
    np.testing.assert_allclose(floor_in_units[0], 0.5 / np.sqrt(12))
    assert floor_in_units[1] < 0.05


def test_gaussian_low_floor_does_not_cap_continuous_data():
    """With min_variance=1e-6 a continuous feature's floor is 1e-6 of its
    variance, so precise data near a subspace are not capped; a grid-valued
    feature keeps gap**2 / 12 and a constant one 1e-3 in its own units."""
    rng = np.random.RandomState(0)
    X = np.column_stack([
        rng.normal(size=500),                 # continuous
        rng.randint(0, 17, size=500) / 16.0,  # grey levels, a grid of step 1/16
        np.full(500, 2.0),                    # constant
    ])
    lik = Gaussian(3, min_variance=1e-6).double()
    lik.fit_data(X)
    floor = lik.variance_floor.numpy()
    assert floor[0] == pytest.approx(1e-6)
    np.testing.assert_allclose(floor[1], (1 / 16 / X[:, 1].std()) ** 2 / 12)
    assert floor[2] == pytest.approx(Gaussian.CONSTANT_FLOOR)
    # An explicit, larger min_variance still applies to every feature.
    strict = Gaussian(3, min_variance=0.05).double()
    strict.fit_data(X)
    np.testing.assert_allclose(strict.variance_floor.numpy(), 0.05)


def test_gaussian_auto_floor_tells_repeated_values_from_distinct_ones():
    """min_variance="auto" (the default): 1e-6 of the variance for a feature
    whose values are all distinct, 1e-3 where values repeat (grey levels, a
    zero-inflated amount), and still the grid and constant rules."""
    rng = np.random.RandomState(0)
    amounts = np.where(rng.uniform(size=500) < 0.7, 0.0, rng.lognormal(size=500))
    X = np.column_stack([
        rng.normal(size=500),                 # continuous: all distinct
        rng.randint(0, 17, size=500) / 16.0,  # grey levels
        amounts,                              # 70% zeros, the rest continuous
        np.full(500, 2.0),                    # constant
    ])
    assert Gaussian(4).min_variance == "auto"
    lik = Gaussian(4).double()
    lik.fit_data(X)
    floor = lik.variance_floor.numpy()
    assert floor[0] == pytest.approx(Gaussian.CONTINUOUS_FLOOR)
    np.testing.assert_allclose(floor[1], max(1e-3, (1 / 16 / X[:, 1].std()) ** 2 / 12))
    assert floor[2] == pytest.approx(Gaussian.DISCRETE_FLOOR)
    assert floor[3] == pytest.approx(Gaussian.CONSTANT_FLOOR)
    # Statistics merged from row sets (distributed fits) agree here, where each
    # half shows the same repeats; repeats across the halves are not counted.
    merged = Gaussian(4).double()
    merged.set_statistics(Gaussian.merge_statistics(
        [lik.statistics(X[:250]), lik.statistics(X[250:])]
    ))
    np.testing.assert_allclose(merged.variance_floor.numpy(), floor)


@pytest.mark.parametrize("columns", [None, [0, 2]])
def test_gaussian_floor_of_a_rare_column_is_read_from_all_rows(monkeypatch, columns):
    """A pixel lit in one image out of many: the row sample used for the grid
    misses it, yet its floor must reflect that value's distance from the rest."""
    monkeypatch.setattr(Gaussian, "_GAP_ROWS", 20)  # every 10th of 200 rows
    rng = np.random.RandomState(0)
    X = np.column_stack([np.zeros(200), rng.normal(size=200), rng.normal(size=200)])
    X[5, 0] = 0.5  # not among rows 0, 10, 20, ...
    assert smallest_gaps(X[::10])[0] == 0  # the sample misses it
    lik = Gaussian(2 if columns else 3, min_variance=1e-3).double()
    lik.fit_data(X, columns)
    with torch.no_grad():
        lik.log_variance.fill_(-100.0)
    floor_in_units = (lik.std() * lik.scale).detach().numpy()
    np.testing.assert_allclose(floor_in_units[0], 0.5 / np.sqrt(12))
    # So the lit row scores like an ordinary outlier, not minus thousands of nats
    # (the other columns get unit variance here, to look at the rare one alone).
    with torch.no_grad():
        lik.log_variance[1:] = 0.0
    params = torch.zeros(1, lik.n_features, dtype=torch.float64)
    row = torch.tensor(X[5:6] if columns is None else X[5:6, columns])
    assert lik.log_prob(params, row).item() > -100


def test_gaussian_refuses_values_float32_cannot_resolve():
    """Values near 1e8 that vary by about 1 round to multiples of 8 in float32
    training: a model fitted on them scored -100 nats per row where
    FactorAnalysis scores -2. They get a clear error; an offset float32 still
    resolves (1e6, steps of 1/16) is accepted."""
    X = np.random.RandomState(0).normal(size=(50, 2))
    Gaussian(2).fit_data(X + [1e6, 0.0])
    for offset in (1e8, -1e8):
        with pytest.raises(ValueError, match=r"around -?1e\+08 .* steps of 8.*Centre"):
            Gaussian(2).fit_data(X + [0.0, offset])
    # A constant column far from 0 has no spread to resolve.
    Gaussian(2).fit_data(np.column_stack([np.full(50, 1e8), X[:, 0]]))


def test_gaussian_mean_and_sample_in_original_units():
    X = np.random.RandomState(0).normal(loc=5.0, scale=3.0, size=(500, 2))
    lik = Gaussian(2).double()
    lik.fit_data(X)
    params = torch.zeros(20000, 2, dtype=torch.float64)
    draws = lik.sample(params, torch.Generator().manual_seed(0)).detach().numpy()
    np.testing.assert_allclose(lik.mean(params[:1]).numpy()[0], X.mean(0))
    np.testing.assert_allclose(draws.std(0), lik.scale.numpy() * lik.std().detach().numpy(), rtol=0.03)


def test_bernoulli_log_prob_matches_scipy():
    rng = np.random.RandomState(0)
    X = (rng.uniform(size=(30, 4)) > 0.5).astype(float)
    logits = torch.tensor(rng.normal(size=(30, 4)))
    got = Bernoulli(4).log_prob(logits, torch.tensor(X)).numpy()
    p = 1 / (1 + np.exp(-logits.numpy()))
    np.testing.assert_allclose(got, stats.bernoulli(p).logpmf(X).sum(axis=1), rtol=1e-10)


def test_bernoulli_broadcasts_over_importance_samples():
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    logits = torch.randn(5, 2, 2, dtype=torch.float64)
    got = Bernoulli(2).log_prob(logits, x)
    assert got.shape == (5, 2)
    np.testing.assert_allclose(got[3].numpy(), Bernoulli(2).log_prob(logits[3], x).numpy())


def test_observation_blocks_sum_and_reassemble():
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=20), (rng.uniform(size=20) > 0.5), rng.normal(size=20)])
    gauss, bern = Gaussian(2).double(), Bernoulli(1).double()
    obs = Observation([(gauss, [0, 2]), (bern, [1])])
    obs.fit_data(X)
    x = torch.tensor(X)
    params = torch.tensor(rng.normal(size=(20, 3)))
    expected = gauss.log_prob(params[:, :2], x[:, [0, 2]]) + bern.log_prob(params[:, 2:], x[:, [1]])
    torch.testing.assert_close(obs.log_prob(params, x), expected)
    mean = obs.mean(params, bounded=False)
    torch.testing.assert_close(mean[:, 1], torch.sigmoid(params[:, 2]))
    torch.testing.assert_close(mean[:, [0, 2]], gauss.mean(params[:, :2]))


def test_bounded_outputs_stay_in_the_training_support():
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=200), rng.poisson(3.0, size=200),
                         np.zeros(200), rng.uniform(size=200) > 0.5])
    obs = Observation([(Gaussian(2).double(), [0, 2]), (NegativeBinomial(1).double(), [1]),
                       (Bernoulli(1).double(), [3])])
    obs.fit_data(X)
    low, high = X.min(0), X.max(0)
    np.testing.assert_array_equal(obs.support_low.numpy(), low)
    np.testing.assert_array_equal(obs.support_high.numpy(), high)
    np.testing.assert_array_equal(obs.support_integer.numpy(), [False, True, True, True])
    # Parameters that put most of the mass outside the range.
    params = torch.tensor(np.tile([3.0, 5.0, 2.0, 0.0], (500, 1)))
    unbounded = obs.mean(params, bounded=False)
    torch.testing.assert_close(obs.mean(params),
                               unbounded.clamp(torch.tensor(low), torch.tensor(high)))
    with torch.no_grad():
        free = obs.sample(params, torch.Generator().manual_seed(0), bounded=False).numpy()
        drawn = obs.sample(params, torch.Generator().manual_seed(0)).numpy()
    assert ((free < low) | (free > high)).any(axis=0)[:3].all()
    assert ((drawn >= low) & (drawn <= high)).all()
    assert (drawn[:, 2] == 0).all() and (drawn[:, 1] == np.round(drawn[:, 1])).all()
    # Redrawn, not piled at the end: the Gaussian column's draws (mean 3 sd
    # above the data's, so about all fall above) take many values below the top.
    assert np.mean(drawn[:, 0] == high[0]) < 0.5 and np.unique(drawn[:, 0]).size > 50


def test_poisson_log_prob_matches_scipy():
    rng = np.random.RandomState(0)
    X = rng.poisson(3.0, size=(25, 3)).astype(float)
    log_rate = torch.tensor(rng.normal(1.0, 0.5, size=(25, 3)))
    got = Poisson(3).double().log_prob(log_rate, torch.tensor(X)).numpy()
    expected = stats.poisson(np.exp(log_rate.numpy())).logpmf(X).sum(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_negative_binomial_log_prob_matches_scipy():
    rng = np.random.RandomState(0)
    X = rng.negative_binomial(2, 0.3, size=(25, 2)).astype(float)
    lik = NegativeBinomial(2).double()
    with torch.no_grad():
        lik.log_theta.copy_(torch.tensor([0.3, -0.7]))
    log_mu = torch.tensor(rng.normal(1.5, 0.5, size=(25, 2)))
    got = lik.log_prob(log_mu, torch.tensor(X)).detach().numpy()
    theta, mu = lik.theta().detach().numpy(), np.exp(log_mu.numpy())
    # scipy's nbinom(n, p): n = theta, p = theta / (theta + mu).
    expected = stats.nbinom(theta, theta / (theta + mu)).logpmf(X).sum(axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_count_log_probs_of_large_counts_are_exact_in_float32():
    """The terms of a large count's log-probability cancel to a few nats: in
    float32 a count of a million was a nat off and one of 3e8 scored +512."""
    counts = np.array([[10.0, 1e3, 5e4, 1e6, 3e8]])
    log_rate = torch.tensor(np.log(counts) + 0.01, dtype=torch.float32)
    x = torch.tensor(counts, dtype=torch.float32)
    poisson = Poisson(5).log_prob_terms(log_rate, x)
    assert poisson.dtype == torch.float32
    rate = np.exp(log_rate.double().numpy())
    np.testing.assert_allclose(poisson.numpy(), stats.poisson(rate).logpmf(counts),
                               atol=1e-4)
    lik = NegativeBinomial(5)
    with torch.no_grad():
        lik.log_theta.fill_(2.0)
    got = lik.log_prob_terms(log_rate, x).detach().numpy()
    theta = np.exp(2.0)
    expected = stats.nbinom(theta, theta / (theta + rate)).logpmf(counts)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # The gradient, which training follows, is still the count less the rate.
    log_rate.requires_grad_(True)
    Poisson(5).log_prob(log_rate, x).sum().backward()
    np.testing.assert_allclose(log_rate.grad.numpy(), counts - rate, rtol=1e-5)


def test_negative_binomial_samples_have_its_mean_and_variance():
    lik = NegativeBinomial(1).double()
    with torch.no_grad():
        lik.log_theta.fill_(np.log(2.0))
    params = torch.full((40000, 1), np.log(5.0), dtype=torch.float64)
    draws = lik.sample(params, torch.Generator().manual_seed(0)).numpy()
    assert draws.mean() == pytest.approx(5.0, rel=0.03)
    assert draws.var() == pytest.approx(5.0 + 25.0 / 2.0, rel=0.06)
    assert np.array_equal(draws, np.round(draws)) and draws.min() >= 0


def test_categorical_log_prob_matches_scipy():
    rng = np.random.RandomState(0)
    lik = Categorical([(0, 1, 2), (0, 1)]).double()
    logits = torch.tensor(rng.normal(size=(10, 5)))
    codes = np.column_stack([rng.randint(3, size=10), rng.randint(2, size=10)]).astype(float)
    got = lik.log_prob(logits, torch.tensor(codes)).numpy()
    expected = np.zeros(10)
    for j, (lo, hi) in enumerate([(0, 3), (3, 5)]):
        p = torch.softmax(logits[:, lo:hi], -1).numpy()
        expected += [stats.multinomial(1, p[i]).logpmf(np.eye(hi - lo)[int(codes[i, j])]) for i in range(10)]
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    one_hot = lik.network_input(torch.tensor(codes))
    assert one_hot.shape == (10, 5) and torch.all(one_hot.sum(-1) == 2)


def test_categorical_mode_and_samples_are_valid_codes():
    lik = Categorical([(0, 1, 2, 3)]).double()
    logits = torch.tensor([[0.0, 5.0, 0.0, 0.0]] * 1000, dtype=torch.float64)
    assert torch.all(lik.mean(logits) == 1)
    draws = lik.sample(logits, torch.Generator().manual_seed(0))
    assert set(draws.unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}
    assert (draws == 1).double().mean() > 0.9


def _per_column_reference(counts, params, codes, mask):
    """What the categorical likelihood computes, one column at a time."""
    terms, one_hots, input_masks, modes, start = [], [], [], [], 0
    for j, n in enumerate(counts):
        logits = params[..., start:start + n]
        log_p = torch.log_softmax(logits, dim=-1)
        index = codes[:, j].long().unsqueeze(-1).expand(log_p.shape[:-1] + (1,))
        terms.append(log_p.gather(-1, index).squeeze(-1))
        one_hot = torch.nn.functional.one_hot(codes[:, j].long(), n)
        one_hots.append(one_hot.to(codes.dtype))
        input_masks.append(mask[:, j:j + 1].expand(-1, n))
        modes.append(logits.argmax(-1).to(params.dtype))
        start += n
    return (torch.stack(terms, -1), torch.cat(one_hots, -1), torch.cat(input_masks, -1),
            torch.stack(modes, -1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("leading", [(), (3,), (2, 4)])
def test_categorical_matches_a_per_column_computation(dtype, leading):
    """The columns handled at once give what each column alone would: log-probs
    (and their gradients) under leading sample dimensions, one-hot inputs,
    input masks, modes and importance-weighted imputations."""
    counts = [3, 1, 7, 2, 12]
    lik = Categorical([tuple(range(n)) for n in counts]).to(dtype)
    generator = torch.Generator().manual_seed(0)
    rows = 11
    shape = leading + (rows, sum(counts))
    params = torch.randn(shape, generator=generator, dtype=dtype) * 4
    params[..., 5] = 200.0  # a column far above the others: each has its own shift
    params[..., 0:3] = 9.0  # ties: the mode is the first of them
    params[..., 11:13] = -5.0
    params.requires_grad_(True)
    codes = [torch.randint(n, (rows,), generator=generator) for n in counts]
    codes = torch.stack(codes, -1).to(dtype)
    mask = torch.rand(rows, len(counts), generator=generator) > 0.3
    reference = _per_column_reference(counts, params, codes, mask)
    terms, one_hot, input_mask, mode = reference

    got = lik.log_prob_terms(params, codes)
    torch.testing.assert_close(got, terms)
    torch.testing.assert_close(lik.log_prob(params, codes), terms.sum(-1))
    grad, = torch.autograd.grad((got * mask).sum(), params)
    expected_grad, = torch.autograd.grad((terms * mask).sum(), params)
    torch.testing.assert_close(grad, expected_grad)
    assert torch.equal(lik.network_input(codes), one_hot)
    assert torch.equal(lik.input_mask(mask), input_mask)
    assert torch.equal(lik.mean(params.detach()), mode)

    # Random logits for the imputation: the reference's softmax may round tied
    # probabilities apart, so that its argmax over exact ties is not the first.
    samples = torch.randn((6, rows, sum(counts)), generator=generator, dtype=dtype) * 4
    weights = torch.randn(samples.shape[:2], generator=generator, dtype=dtype)
    weights = torch.softmax(weights, 0)
    mixture = [
        (weights.unsqueeze(-1) * torch.softmax(logits, -1)).sum(0).argmax(-1)
        for logits in torch.split(samples, counts, dim=-1)
    ]
    assert torch.equal(lik.impute(samples, weights), torch.stack(mixture, -1).to(dtype))


def test_categorical_index_tensors_are_rebuilt_not_saved():
    """The index tensors follow the module (dtype changes leave them alone) and
    are rebuilt from the categories, so a saved model's state stays the same."""
    lik = Categorical([(0, 1, 2), ("a", "b")]).double()
    assert lik.state_dict() == {}
    assert lik._input_column.dtype == torch.long
    args, kwargs = init_args(lik)
    clone = Categorical(*args, **kwargs)
    clone.load_state_dict(lik.state_dict(), strict=True)
    for name, tensor in lik.named_buffers():
        assert torch.equal(getattr(clone, name), tensor)


def test_masked_log_prob_sums_the_observed_entries_only():
    """A hand computation with scipy over the observed entries of mixed rows."""
    rng = np.random.RandomState(0)
    gauss, counts, cats = Gaussian(2).double(), Poisson(1).double(), Categorical([(0, 1, 2)]).double()
    obs = Observation([(gauss, [0, 2]), (counts, [1]), (cats, [3])])
    X = np.column_stack([rng.normal(size=6), rng.poisson(3, 6), rng.normal(size=6),
                         rng.randint(3, size=6)]).astype(float)
    X[0, 0] = X[1, 1] = X[2, 3] = X[3, [0, 2]] = np.nan
    gauss.fit_data(np.nan_to_num(X), [0, 2])
    params = torch.tensor(rng.normal(size=(6, 2 + 1 + 3)))
    x = torch.tensor(X)
    got = obs.log_prob(params, x, observed(x)).detach().numpy()
    p = params.numpy()
    loc = gauss.loc.numpy() + gauss.scale.numpy() * p[:, :2]
    scale = gauss.scale.numpy() * gauss.std().detach().numpy()
    expected = np.zeros(6)
    for i in range(6):
        for j, column in enumerate([0, 2]):
            if not np.isnan(X[i, column]):
                expected[i] += stats.norm(loc[i, j], scale[j]).logpdf(X[i, column])
        if not np.isnan(X[i, 1]):
            expected[i] += stats.poisson(np.exp(p[i, 2])).logpmf(X[i, 1])
        if not np.isnan(X[i, 3]):
            probs = np.exp(p[i, 3:]) / np.exp(p[i, 3:]).sum()
            expected[i] += np.log(probs[int(X[i, 3])])
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    # With every entry observed, the mask changes nothing.
    complete = torch.tensor(np.nan_to_num(X))
    torch.testing.assert_close(obs.log_prob(params, complete, observed(complete)),
                               obs.log_prob(params, complete))


def test_missing_entries_are_neutral_network_inputs():
    gauss, cats = Gaussian(1).double(), Categorical([(0, 1)]).double()
    obs = Observation([(gauss, [0]), (cats, [1])])
    gauss.fit_data(np.array([[1.0], [3.0]]))
    x = torch.tensor([[np.nan, 1.0], [3.0, np.nan]], dtype=torch.float64)
    inputs = obs.network_input(x, observed(x))
    # The Gaussian's missing entry is its mean (0 standardised); the category's
    # one-hot block is all zeros.
    torch.testing.assert_close(inputs, torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
                                                    dtype=torch.float64))


def test_categorical_mode_with_one_wide_column_among_narrow_ones():
    """One column of many categories next to many binary ones: the mode is
    found column by column (no padded grid hundreds of times the logits'
    size), and agrees with each column's argmax."""
    lik = Categorical([list(range(300))] + [["no", "yes"]] * 50)
    params = torch.randn(7, lik.n_params, generator=torch.Generator().manual_seed(0))
    expected = torch.stack(
        [c.argmax(-1) for c in torch.split(params, lik.n_categories, dim=-1)], -1)
    assert torch.equal(lik.mean(params), expected.to(params.dtype))


def test_discrete_is_a_probability_over_all_integers():
    lik = Discrete([2], [6]).double()
    params = torch.tensor(np.random.RandomState(0).normal(size=(1, lik.n_params)))
    values = np.arange(-200, 209, dtype=float)[:, None]
    x = torch.tensor(lik.encode(values, ["v"]))
    probs = lik.log_prob(params.expand(len(values), -1), x).exp().numpy()
    assert probs.sum() == pytest.approx(1.0, abs=1e-9)
    # Beyond the range the probability falls geometrically, step by step.
    assert probs[values[:, 0] == 8][0] < probs[values[:, 0] == 7][0]
    assert np.all(np.diff(probs[values[:, 0] >= 7]) < 0)


def test_discrete_keeps_values_and_refuses_fractions():
    lik = Discrete.from_columns([pd.Series([3, 5, None], dtype="Int64", name="n")], {})
    assert (lik.low, lik.high) == ([3], [5])
    values = np.array([[3.0], [5.0], [np.nan], [9.0]])
    np.testing.assert_array_equal(lik.encode(values, ["n"]), values)
    with pytest.raises(ValueError, match="Column 'n' holds 2.5.*whole numbers"):
        lik.encode(np.array([[2.5]]), ["n"])
    # Means and draws are values of the range (categories inside are v - low + 1).
    params = torch.full((4, lik.n_params), -5.0, dtype=torch.float64)
    params[:, 2] = 5.0  # the category of the value 4
    probs = torch.softmax(params[0], -1)
    expected = float((probs * torch.arange(2.0, 7.0, dtype=torch.float64)).sum())
    np.testing.assert_allclose(lik.double().mean(params).numpy(), expected, rtol=1e-12)
    assert expected == pytest.approx(4.0, abs=0.01)
    drawn = lik.sample(params, torch.Generator().manual_seed(0))
    assert set(drawn.flatten().tolist()) <= {2.0, 3.0, 4.0, 5.0, 6.0}


def test_lognormal_has_a_point_mass_at_zero_and_matches_scipy_above():
    rng = np.random.RandomState(0)
    X = np.column_stack([np.exp(rng.normal(1.0, 0.8, size=300)),
                         np.where(rng.uniform(size=300) < 0.3, 0.0,
                                  np.exp(rng.normal(size=300)))])
    lik = LogNormal(2).double()
    lik.fit_data(X)
    positive = np.log(X[X[:, 1] > 0, 1])
    assert float(lik.loc[1]) == pytest.approx(positive.mean())
    params = torch.tensor(rng.normal(size=(300, 4)) * 0.3)
    x = torch.tensor(X)
    with torch.no_grad():
        logit, mu = params[:, :2].numpy(), (lik.loc + lik.scale * params[:, 2:]).numpy()
        sigma = (lik.std() * lik.scale).numpy()
        got = lik.log_prob_terms(params, x).numpy()
        p_zero = 1 / (1 + np.exp(-logit))
        expected = np.where(X == 0, np.log(p_zero), np.log1p(-p_zero) + stats.lognorm(
            s=sigma, scale=np.exp(mu)).logpdf(np.where(X == 0, 1.0, X)))
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
        mean = lik.mean(params).numpy()
        np.testing.assert_allclose(mean, (1 - p_zero) * stats.lognorm(
            s=sigma, scale=np.exp(mu)).mean(), rtol=1e-9)
        many = params[:1].expand(20000, -1)
        drawn = lik.sample(many, torch.Generator().manual_seed(0)).numpy()
    assert (drawn >= 0).all()
    np.testing.assert_allclose((drawn == 0).mean(0), p_zero[0], atol=0.015)


