"""Count likelihoods: zero inflation, and the row total (count_depth)."""

import pickle

import numpy as np
import pytest
import torch
from scipy import stats

import skvae
from skvae.likelihoods import (
    NegativeBinomial,
    Poisson,
    ZeroInflatedNegativeBinomial,
    ZeroInflatedPoisson,
)


def zero_inflated(logpmf, pi, x):
    """log(pi [x == 0] + (1 - pi) pmf(x)), by hand from scipy's pmf."""
    return np.log(pi * (x == 0) + (1 - pi) * np.exp(logpmf))


def test_zero_inflated_poisson_log_prob_matches_scipy():
    rng = np.random.RandomState(0)
    X = np.where(rng.uniform(size=(30, 3)) < 0.3, 0, rng.poisson(4.0, size=(30, 3))).astype(float)
    params = torch.tensor(rng.normal(1.0, 0.7, size=(30, 6)))
    lik = ZeroInflatedPoisson(3).double()
    assert lik.n_params == 6 and lik.n_inputs == 3
    got = lik.log_prob_terms(params, torch.tensor(X)).numpy()
    mu, pi = np.exp(params[:, :3].numpy()), 1 / (1 + np.exp(-params[:, 3:].numpy()))
    expected = zero_inflated(stats.poisson(mu).logpmf(X), pi, X)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    np.testing.assert_allclose(lik.log_prob(params, torch.tensor(X)).numpy(),
                               expected.sum(1), rtol=1e-10)


def test_zero_inflated_negative_binomial_log_prob_matches_scipy():
    rng = np.random.RandomState(1)
    X = np.where(rng.uniform(size=(30, 2)) < 0.4, 0,
                 rng.negative_binomial(2, 0.2, size=(30, 2))).astype(float)
    params = torch.tensor(rng.normal(1.5, 1.0, size=(30, 4)))
    lik = ZeroInflatedNegativeBinomial(2).double()
    with torch.no_grad():
        lik.log_theta.copy_(torch.tensor([0.4, -1.2]))
    got = lik.log_prob(params, torch.tensor(X)).detach().numpy()
    theta = lik.theta().detach().numpy()
    mu, pi = np.exp(params[:, :2].numpy()), 1 / (1 + np.exp(-params[:, 2:].numpy()))
    pmf = stats.nbinom(theta, theta / (theta + mu)).logpmf(X)
    np.testing.assert_allclose(got, zero_inflated(pmf, pi, X).sum(1), rtol=1e-9)


def test_zero_inflated_log_probs_stay_finite_at_extreme_logits():
    """A zero-inflation logit of +-60 (pi one or zero to float64) scores a zero
    and a positive count finitely, with finite gradients."""
    params = torch.tensor([[2.0, 2.0, 60.0, -60.0]], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([[0.0, 5.0]], dtype=torch.float64)
    for lik in (ZeroInflatedPoisson(2).double(), ZeroInflatedNegativeBinomial(2).double()):
        terms = lik.log_prob_terms(params, x)
        assert torch.isfinite(terms).all()
        assert terms[0, 0].item() == pytest.approx(0.0, abs=1e-12)  # a sure structural zero
        terms.sum().backward()
        assert torch.isfinite(params.grad).all()
        params.grad = None


@pytest.mark.parametrize("kind", ["zip", "zinb"])
def test_zero_inflated_samples_have_its_mean_and_variance(kind):
    mu, pi, theta = 6.0, 0.3, 2.0
    lik = (ZeroInflatedPoisson(1) if kind == "zip" else ZeroInflatedNegativeBinomial(1)).double()
    if kind == "zinb":
        with torch.no_grad():
            lik.log_theta.fill_(np.log(theta))
    logit = np.log(pi / (1 - pi))
    params = torch.tensor([[np.log(mu), logit]], dtype=torch.float64).expand(40000, 2)
    draws = lik.sample(params, torch.Generator().manual_seed(0)).numpy()
    count_var = mu if kind == "zip" else mu + mu**2 / theta
    assert draws.mean() == pytest.approx((1 - pi) * mu, rel=0.03)
    assert draws.var() == pytest.approx((1 - pi) * count_var + pi * (1 - pi) * mu**2, rel=0.06)
    assert np.mean(draws == 0) > pi  # the structural zeros and the count's own
    assert np.array_equal(draws, np.round(draws)) and draws.min() >= 0
    np.testing.assert_allclose(lik.mean(params[:1]).numpy(), [[(1 - pi) * mu]])
    # Every random number comes from the generator: the same seed, the same draws.
    again = lik.sample(params, torch.Generator().manual_seed(0)).numpy()
    np.testing.assert_array_equal(draws, again)


def zero_inflated_counts(n=400, d=8, seed=0):
    """Counts of mean about 30 given a latent factor, 40% of them set to 0."""
    rng = np.random.RandomState(seed)
    z = rng.normal(size=(n, 1))
    mu = np.exp(3.5 + z @ rng.normal(0, 0.5, size=(1, d)))
    counts = rng.poisson(rng.gamma(20.0, mu / 20.0))
    return np.where(rng.uniform(size=(n, d)) < 0.4, 0, counts).astype(float)


def test_zinb_scores_zero_inflated_counts_above_negbinom(make_vae):
    """The negative binomial can only spread its mass to reach the zeros (a
    dispersion near 0.25); the ZINB learns them apart, and keeps a theta near
    the true 20 for the rest."""
    X = zero_inflated_counts()
    train, test = X[:320], X[320:]
    fitted = {kind: make_vae(likelihood=kind, max_iter=300, learning_rate_init=1e-2).fit(train)
              for kind in ("negbinom", "zinb")}
    scores = {kind: vae.score(test) for kind, vae in fitted.items()}
    assert scores["zinb"] > scores["negbinom"] + 2.0, scores
    theta = {kind: vae.module_.observation.likelihoods[0].theta().detach().numpy()
             for kind, vae in fitted.items()}
    assert np.median(theta["zinb"]) > 5 > 1 > np.median(theta["negbinom"]), theta


# ------------------------------------------------------------- the row total


def depth_counts(n=200, d=30, seed=0, depth_sd=0.5):
    """Counts of two compositions at depths that vary by ``depth_sd`` in log."""
    rng = np.random.RandomState(seed)
    profiles = rng.dirichlet(np.full(d, 0.5), size=2)
    kind = rng.randint(2, size=n)
    depth = np.exp(rng.normal(np.log(500), depth_sd, size=n))
    return rng.poisson(depth[:, None] * profiles[kind]).astype(float)


def fitted_depth(kind, X):
    lik = {"poisson": Poisson, "negbinom": NegativeBinomial, "zip": ZeroInflatedPoisson,
           "zinb": ZeroInflatedNegativeBinomial}[kind](X.shape[1], count_depth="observed")
    lik = lik.double()
    lik.fit_data(X)
    return lik


def test_the_total_has_a_rounded_log_normal_that_sums_to_one():
    X = depth_counts()
    lik = fitted_depth("poisson", X)
    logs = np.log(X.sum(1))
    assert lik.depth_loc.item() == pytest.approx(logs.mean())
    assert lik.depth_scale.item() == pytest.approx(logs.std())
    totals = torch.arange(0, 200_000, dtype=torch.float64)
    mass = lik.log_depth(totals).exp()
    assert mass.sum().item() == pytest.approx(1.0, abs=1e-9)
    loc, scale = lik.depth_loc.item(), lik.depth_scale.item()
    l = 480.0
    expected = (stats.norm.cdf((np.log(l + 0.5) - loc) / scale)
                - stats.norm.cdf((np.log(l - 0.5) - loc) / scale))
    assert lik.log_depth(torch.tensor([l], dtype=torch.float64)).item() == pytest.approx(
        np.log(expected), rel=1e-8)
    # Far in either tail it is still finite (no 0 - 0 of two cdfs).
    far = lik.log_depth(torch.tensor([0.0, 1.0, 1e9], dtype=torch.float64))
    assert torch.isfinite(far).all() and (far < -5).all()


@pytest.mark.parametrize("kind", ["poisson", "negbinom", "zip", "zinb"])
def test_observed_depth_scores_the_total_then_the_counts_given_it(kind):
    X = depth_counts(n=40)
    lik = fitted_depth(kind, X)
    rng = np.random.RandomState(1)
    params = torch.tensor(rng.normal(size=(40, lik.n_params)))
    x = torch.tensor(X)
    got = lik.log_prob(params, x).detach().numpy()
    # By hand: the mean of each count is the row's total times its share.
    d = X.shape[1]
    total = X.sum(1, keepdims=True)
    mu = total * np.exp(params[:, :d].numpy()) / np.exp(params[:, :d].numpy()).sum(1, keepdims=True)
    if kind in ("poisson", "zip"):
        pmf = stats.poisson(mu).logpmf(X)
    else:
        theta = lik.theta().detach().numpy()
        pmf = stats.nbinom(theta, theta / (theta + mu)).logpmf(X)
    if kind in ("zip", "zinb"):
        pmf = zero_inflated(pmf, 1 / (1 + np.exp(-params[:, d:].numpy())), X)
    log_total = lik.log_depth(torch.tensor(total[:, 0])).numpy()
    np.testing.assert_allclose(got, log_total + pmf.sum(1), rtol=1e-9)
    # The per-column terms carry equal shares of the total's: they sum to it.
    terms = lik.log_prob_terms(params, x).detach().numpy()
    np.testing.assert_allclose(terms.sum(1), got, rtol=1e-12)
    assert not lik.supports_missing


def test_observed_depth_mean_sample_and_network_input():
    X = depth_counts()
    lik = fitted_depth("negbinom", X)
    typical = np.exp(np.log(X.sum(1)).mean())
    params = torch.tensor(np.random.RandomState(0).normal(size=(3, 30)))
    share = torch.softmax(params, -1).numpy()
    np.testing.assert_allclose(lik.mean(params).detach().numpy(), typical * share, rtol=1e-10)
    # A row at twice the depth, same composition: the encoder sees the same thing.
    x = torch.tensor(X[:5])
    np.testing.assert_allclose(lik.network_input(2 * x).numpy(), lik.network_input(x).numpy(),
                               rtol=1e-12)
    # Draws: totals from the fitted log-normal, counts by the shares (Poisson
    # counts, whose sum is Poisson around the total).
    many = params[:1].expand(20000, 30)
    draws = fitted_depth("poisson", X).sample(many, torch.Generator().manual_seed(0)).numpy()
    logs = np.log(draws.sum(1))
    assert logs.mean() == pytest.approx(lik.depth_loc.item(), abs=0.02)
    assert logs.std() == pytest.approx(lik.depth_scale.item(), rel=0.1)
    np.testing.assert_allclose(draws.sum(0) / draws.sum(), share[0], atol=0.01)


def test_depth_statistics_merge_across_row_sets():
    """A distributed fit merges the shards' statistics: the same model."""
    X = depth_counts()
    whole = fitted_depth("zinb", X)
    merged = ZeroInflatedNegativeBinomial(30, count_depth="observed").double()
    merged.set_statistics(type(merged).merge_statistics(
        [merged.statistics(X[:70]), merged.statistics(X[70:])]))
    for name in ("depth_loc", "depth_scale", "input_loc", "input_scale"):
        np.testing.assert_allclose(getattr(merged, name).numpy(), getattr(whole, name).numpy(),
                                   rtol=1e-12)


def test_auto_depth_needs_wide_complete_count_blocks():
    assert NegativeBinomial(19, count_depth="auto").count_depth == "none"
    narrow = dict(NegativeBinomial(19, count_depth="auto").named_buffers())
    assert "depth_loc" not in narrow  # the model of a narrow block is as before
    X = depth_counts()
    wide = NegativeBinomial(30, count_depth="auto")
    wide.fit_data(X)
    assert wide.depth and not wide.supports_missing
    holes = X.copy()
    holes[3, 4] = np.nan
    incomplete = NegativeBinomial(30, count_depth="auto")
    assert incomplete.supports_missing  # undecided until it has seen the rows
    incomplete.fit_data(holes)
    assert not incomplete.depth and incomplete.supports_missing
    with pytest.raises(ValueError, match="count_depth='observed'.*missing.*count_depth='none'"):
        NegativeBinomial(30, count_depth="observed").fit_data(holes)
    with pytest.raises(ValueError, match="count_depth must be one of"):
        Poisson(3, count_depth="yes")


def test_estimator_count_depth(make_vae):
    X = depth_counts(n=150, depth_sd=0.7)
    observed = make_vae(likelihood="negbinom", count_depth="observed", max_iter=10).fit(X)
    lik = observed.module_.observation.likelihoods[0]
    assert lik.depth and lik.count_depth == "observed"
    # "auto" on 30 complete count columns is "observed": the same model.
    auto = make_vae(likelihood="negbinom", max_iter=10).fit(X)
    np.testing.assert_array_equal(auto.score_samples(X), observed.score_samples(X))
    none = make_vae(likelihood="negbinom", count_depth="none", max_iter=10).fit(X)
    assert not none.module_.observation.likelihoods[0].depth
    assert not np.allclose(none.score_samples(X), observed.score_samples(X))
    # Saved and loaded, it is the same model.
    loaded = pickle.loads(pickle.dumps(observed))
    assert loaded.module_.observation.likelihoods[0].depth
    np.testing.assert_array_equal(loaded.score_samples(X), observed.score_samples(X))
    np.testing.assert_array_equal(loaded.inverse_transform(loaded.transform(X[:3])),
                                  observed.inverse_transform(observed.transform(X[:3])))
    # A warm start cannot change it.
    with pytest.raises(ValueError, match="count_depth was changed"):
        observed.set_params(warm_start=True, count_depth="none").fit(X)


def test_observed_depth_refuses_missing_counts_with_the_remedy(make_vae):
    X = depth_counts(n=100)
    holes = X.copy()
    holes[2, 5] = np.nan
    remedy = "count_depth='observed'.*missing entries.*count_depth='none'"
    with pytest.raises(ValueError, match=remedy):
        make_vae(likelihood="poisson", count_depth="observed").fit(holes)
    vae = make_vae(likelihood="poisson", count_depth="observed").fit(X)
    for method in (vae.transform, vae.score_samples):
        with pytest.raises(ValueError, match=remedy):
            method(holes)
    # Under "auto" the incomplete block models no total, and fits.
    auto = make_vae(likelihood="poisson").fit(holes)
    assert not auto.module_.observation.likelihoods[0].depth
    assert np.isfinite(auto.score_samples(holes)).all()


def test_the_count_depth_takes_the_depth_out_of_the_codes(make_vae):
    """Rows of two compositions at depths spread by 0.7 in log: without the
    total, a code follows the depth; with it, hardly."""
    from sklearn.linear_model import LinearRegression

    X = depth_counts(n=300, depth_sd=0.7, seed=2)
    log_depth = np.log(X.sum(1))
    r2 = {}
    for mode in ("observed", "none"):
        Z = make_vae(likelihood="poisson", count_depth=mode, max_iter=60).fit_transform(X)
        r2[mode] = LinearRegression().fit(Z, log_depth).score(Z, log_depth)
    assert r2["observed"] < 0.3 < 0.7 < r2["none"], r2


def test_public_likelihood_names():
    import skvae.likelihoods as public

    assert skvae.Likelihood is public.Likelihood
    for name, cls in public.LIKELIHOODS.items():
        assert getattr(public, cls.__name__) is cls and cls.name == name
    assert {"zip", "zinb"} <= set(public.LIKELIHOODS)


# ------------------------------------------------ wide blocks, column slices

def _count_heads(n, depth):
    heads = [Poisson(n, depth), NegativeBinomial(n, depth), ZeroInflatedPoisson(n, depth),
             ZeroInflatedNegativeBinomial(n, depth), SharedDispersion(n, depth)]
    for head in heads:
        head.double()
        if depth == "observed":
            head._set_depth({"depth": (np.array([9.0]), np.array([3.0]), np.array([4.0])),
                             "missing": 0})
        if hasattr(head, "log_theta"):
            with torch.no_grad():
                head.log_theta.copy_(torch.linspace(-1.0, 1.5, head.log_theta.numel()))
    return heads


class SharedDispersion(NegativeBinomial):
    """The extension guide's negative binomial: one theta for every column."""

    def __init__(self, n_features, count_depth="none"):
        super().__init__(n_features, count_depth)
        self.log_theta = torch.nn.Parameter(torch.zeros(1))


@pytest.mark.parametrize("depth", ["none", "observed"])
@pytest.mark.parametrize("leading", [(), (3,)])
def test_wide_count_blocks_scored_in_column_slices_match_the_whole(monkeypatch, depth, leading):
    """A batch wider than SCORE_CHUNK_ENTRIES is scored (and differentiated) a
    slice of columns at a time: the same log-probabilities and gradients as
    the whole batch at once, for every count likelihood, with importance
    samples in front, with and without the depth, with grad on and off."""
    import skvae._likelihoods as likelihoods

    rng = np.random.RandomState(0)
    n_rows, n = 5, 23
    x = torch.tensor(rng.poisson(3.0, size=(n_rows, n)) * (rng.uniform(size=(n_rows, n)) < 0.6),
                     dtype=torch.float64)
    x[0] = 0.0  # a row of zeros: a total of 0
    for head in _count_heads(n, depth):
        params = torch.tensor(rng.normal(0.0, 1.0, size=leading + (n_rows, head.n_params)),
                              requires_grad=True)
        whole = head.log_prob_terms(params, x).sum(-1)
        expected = torch.autograd.grad(whole.sum(), [params] + list(head.parameters()))
        monkeypatch.setattr(likelihoods, "SCORE_CHUNK_ENTRIES", 4 * int(np.prod(leading)))
        sliced = head.log_prob(params, x)
        assert sliced.shape == whole.shape
        torch.testing.assert_close(sliced, whole, rtol=1e-12, atol=1e-10)
        got = torch.autograd.grad(sliced.sum(), [params] + list(head.parameters()))
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10)
        with torch.no_grad():
            torch.testing.assert_close(head.log_prob(params, x), whole.detach(),
                                       rtol=1e-12, atol=1e-10)
        monkeypatch.undo()


def test_a_likelihood_s_own_log_prob_terms_are_not_bypassed_by_the_slices(monkeypatch):
    """A subclass that overrides log_prob_terms is scored by them, however wide."""
    import skvae._likelihoods as likelihoods

    class Halved(NegativeBinomial):
        def log_prob_terms(self, params, x):
            return super().log_prob_terms(params, x) / 2

    head, x = Halved(30).double(), torch.ones(4, 30, dtype=torch.float64)
    params = torch.zeros(4, 30, dtype=torch.float64)
    full = NegativeBinomial(30).double().log_prob(params, x)
    monkeypatch.setattr(likelihoods, "SCORE_CHUNK_ENTRIES", 8)
    torch.testing.assert_close(head.log_prob(params, x), full / 2)


def test_a_fit_scored_in_column_slices_trains_as_the_whole(monkeypatch, make_vae):
    """Slicing changes the training only by rounding: the same losses to 6
    digits after a few epochs, the same codes to 4."""
    import skvae._likelihoods as likelihoods

    X = np.random.RandomState(0).poisson(2.0, size=(120, 40)).astype(float)
    whole = make_vae(likelihood="negbinom", max_iter=4).fit(X)
    monkeypatch.setattr(likelihoods, "SCORE_CHUNK_ENTRIES", 64)  # 2 columns a slice
    sliced = make_vae(likelihood="negbinom", max_iter=4).fit(X)
    np.testing.assert_allclose(sliced.loss_curve_, whole.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(sliced.transform(X), whole.transform(X), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sliced.score_samples(X), whole.score_samples(X), rtol=1e-6)


@pytest.mark.parametrize("option", ["mixed_precision",
                                    pytest.param("compile", marks=pytest.mark.slow)])
def test_column_slices_train_under_mixed_precision_and_compile(monkeypatch, make_vae, option):
    """The slices' checkpoints run under bfloat16 autocast and inside a
    compiled step, and train as the whole batch does (compiled: as the eager
    whole batch, one compilation only)."""
    import shutil

    import skvae._likelihoods as likelihoods

    if option == "compile" and shutil.which("c++") is None:
        pytest.skip("torch.compile needs a C++ compiler")
    X = np.random.RandomState(0).poisson(2.0, size=(96, 40)).astype(np.float32)
    params = {"likelihood": "negbinom", "max_iter": 2, "batch_size": 32, option: True}
    whole = make_vae(**{**params, "compile": False}).fit(X)
    monkeypatch.setattr(likelihoods, "SCORE_CHUNK_ENTRIES", 256)  # 8 columns a slice
    sliced = make_vae(**params).fit(X)
    assert np.isfinite(sliced.loss_curve_).all()
    np.testing.assert_allclose(sliced.loss_curve_, whole.loss_curve_, rtol=1e-3)
