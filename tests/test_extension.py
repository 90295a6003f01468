"""The public extension API: users' own likelihoods and networks."""

import functools
import math
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from torch import nn

from skvae import Likelihood

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


class StudentT(Likelihood):
    """Student-t with ``df`` degrees of freedom and a learned scale per column."""

    def __init__(self, n_features, df=4.0):
        super().__init__(n_features)
        self.df = float(df)
        self.log_scale = nn.Parameter(torch.zeros(n_features))

    def log_prob(self, params, x):
        nu, scale = self.df, self.log_scale.exp()
        z = (x - params) / scale
        constant = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
        return (constant - torch.log(scale) - (nu + 1) / 2 * torch.log1p(z.square() / nu)).sum(-1)

    def mean(self, params):
        return params

    def sample(self, params, generator):
        normal = torch.randn(params.shape, generator=generator, dtype=params.dtype)
        chi2 = 2 * torch._standard_gamma(torch.full(params.shape, self.df / 2, dtype=params.dtype))
        return params + self.log_scale.exp() * normal / torch.sqrt(chi2 / self.df)


class Beta(Likelihood):
    """Beta on (0, 1): two parameters per column (log concentrations)."""

    def __init__(self, n_features):
        super().__init__(n_features)
        self.n_params = 2 * n_features

    def check_support(self, values, names):
        bad = np.flatnonzero(((values <= 0) | (values >= 1)).any(axis=0))
        if bad.size:
            where = "X" if names is None else f"column {names[bad[0]]!r}"
            raise ValueError(f"likelihood Beta needs values in (0, 1); {where} has others.")

    def _concentrations(self, params):
        a, b = params.clamp(-8, 8).exp().chunk(2, dim=-1)
        return a, b

    def log_prob(self, params, x):
        a, b = self._concentrations(params)
        return torch.distributions.Beta(a, b).log_prob(x).sum(-1)

    def mean(self, params):
        a, b = self._concentrations(params)
        return a / (a + b)

    def sample(self, params, generator):
        a, b = self._concentrations(params)
        ga, gb = torch._standard_gamma(a), torch._standard_gamma(b)
        return ga / (ga + gb)


class ResidualMLP(nn.Module):
    def __init__(self, n_inputs, n_outputs, width=16):
        super().__init__()
        self.inner = nn.Linear(n_inputs, width)
        self.block = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU())
        self.out = nn.Linear(width, n_outputs)

    def forward(self, x):
        h = self.inner(x)
        return self.out(h + self.block(h))


def heavy_tailed(n=400, seed=0):
    """Rows near a plane in 6-D, with heavy-tailed (Student-t, 1.5 df) noise."""
    projection = np.random.RandomState(42).normal(size=(2, 6))
    rng = np.random.RandomState(seed)
    return rng.normal(size=(n, 2)) @ projection + 0.3 * rng.standard_t(1.5, size=(n, 6))


# ------------------------------------------------------------- likelihoods


def test_student_t_log_prob_matches_scipy():
    rng = np.random.RandomState(0)
    head = StudentT(3, df=2.5).double()
    with torch.no_grad():
        head.log_scale.copy_(torch.tensor([0.0, -1.0, 0.7], dtype=torch.float64))
    params, x = rng.normal(size=(10, 3)), rng.standard_t(2, size=(10, 3))
    got = head.log_prob(torch.tensor(params), torch.tensor(x)).detach().numpy()
    scale = np.exp([0.0, -1.0, 0.7])
    np.testing.assert_allclose(got, stats.t(2.5, params, scale).logpdf(x).sum(1), rtol=1e-10)


def test_beta_log_prob_matches_scipy():
    rng = np.random.RandomState(0)
    params, x = rng.normal(size=(10, 4)), rng.uniform(0.05, 0.95, size=(10, 2))
    got = Beta(2).double().log_prob(torch.tensor(params), torch.tensor(x)).numpy()
    a, b = np.exp(params[:, :2]), np.exp(params[:, 2:])
    np.testing.assert_allclose(got, stats.beta(a, b).logpdf(x).sum(1), rtol=1e-10)


def test_a_user_likelihood_fits_heavy_tailed_data_better_than_the_gaussian(make_vae):
    X, held_out = heavy_tailed(seed=0), heavy_tailed(seed=1)
    params = {"max_iter": 60, "n_components": 2, "learning_rate_init": 3e-3}
    gaussian = make_vae(**params).fit(X)
    student = make_vae(likelihood=functools.partial(StudentT, df=2), **params).fit(X)
    # Both are densities in the same units, so their held-out scores compare.
    assert student.score(held_out) > gaussian.score(held_out) + 1.0
    assert student.sample(5, random_state=0).shape == (5, 6)
    assert student.inverse_transform(student.transform(X)).shape == X.shape


def test_user_likelihood_per_column_in_a_dataframe(make_vae):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"share": rng.uniform(0.05, 0.95, 200), "x": rng.normal(size=200),
                          "kind": rng.choice(["a", "b"], 200)})
    vae = make_vae(likelihood={"share": Beta, "x": StudentT}).fit(frame)
    heads = {type(lik): cols for lik, cols in zip(vae.module_.observation.likelihoods,
                                                  vae.module_.observation.columns)}
    assert heads[Beta] == [0] and heads[StudentT] == [1] and len(heads) == 3
    out = vae.sample(50, random_state=0)
    assert list(out.columns) == ["share", "x", "kind"]
    assert out["share"].between(0, 1).all() and set(out["kind"]) <= {"a", "b"}
    bad = frame.copy()
    bad.loc[3, "share"] = 1.5
    with pytest.raises(ValueError, match="Beta needs values in \\(0, 1\\); column 'share'"):
        vae.transform(bad)


def test_user_likelihood_per_column_in_an_array(make_vae):
    X = heavy_tailed(100)
    vae = make_vae(likelihood=[StudentT, "gaussian"] * 3).fit(X)
    assert vae.module_.observation.columns == [[0, 2, 4], [1, 3, 5]]
    assert np.isfinite(vae.score_samples(X)).all()


# ------------------------------------------------------------------ networks


def test_user_networks_replace_the_architectures(make_vae):
    X = heavy_tailed(200)
    vae = make_vae(encoder=functools.partial(ResidualMLP, width=8), decoder=ResidualMLP).fit(X)
    assert isinstance(vae.module_.encoder, ResidualMLP)
    assert vae.module_.encoder.inner.out_features == 8
    assert vae.module_.decoder.inner.out_features == 16
    assert vae.transform(X).shape == (200, 2)
    # Importance-weighted scores decode several samples per row through a 2-D decoder.
    assert np.isfinite(vae.score_samples(X, n_importance_samples=5)).all()
    # A fresh network per fit: a refit does not continue the old one.
    first = vae.module_.encoder
    assert vae.fit(X).module_.encoder is not first


def test_only_one_user_network_keeps_the_architectures_other(make_vae):
    vae = make_vae(decoder=ResidualMLP).fit(heavy_tailed(100))
    assert isinstance(vae.module_.encoder, nn.Sequential)
    assert isinstance(vae.module_.decoder, ResidualMLP)


# ------------------------------------------------- as scikit-learn parameters


def plug_in_vae(make_vae):
    return make_vae(likelihood=functools.partial(StudentT, df=3),
                    encoder=functools.partial(ResidualMLP, width=8), decoder=ResidualMLP)


def test_plug_ins_survive_clone_params_and_pickle(make_vae):
    vae = plug_in_vae(make_vae)
    copy = clone(vae)
    assert copy.get_params()["likelihood"].keywords == {"df": 3}
    copy.set_params(likelihood=functools.partial(StudentT, df=10))
    assert vae.get_params()["likelihood"].keywords == {"df": 3}
    X = heavy_tailed(150)
    fitted = vae.fit(X)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(X), fitted.transform(X))
    assert restored.module_.observation.likelihoods[0].df == 3.0


def test_partial_plug_ins_continue_with_partial_fit_and_warm_start(make_vae):
    X = heavy_tailed(150)
    vae = plug_in_vae(make_vae).fit(X[:100])
    vae.partial_fit(X[100:])  # the same (deep-copied) partials: no "was changed"
    vae.set_params(warm_start=True, max_iter=2).fit(X)
    assert vae.n_iter_ == 5 + 1 + 2
    vae.set_params(likelihood=functools.partial(StudentT, df=4))  # a real change
    with pytest.raises(ValueError, match="likelihood was changed"):
        vae.partial_fit(X)


@pytest.mark.slow
def test_plug_ins_in_a_parallel_grid_search(make_vae):
    X = heavy_tailed(200)
    grid = {"likelihood": [functools.partial(StudentT, df=1.5), functools.partial(StudentT, df=50)]}
    vae = plug_in_vae(make_vae).set_params(max_iter=20)
    search = GridSearchCV(vae, grid, cv=2, n_jobs=2).fit(X)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["likelihood"].keywords == {"df": 1.5}


# ------------------------------------------------------------ bad plug-ins


class Wide(nn.Module):
    def __init__(self, n_inputs, n_outputs):
        super().__init__()
        self.linear = nn.Linear(n_inputs, n_outputs + 1)

    def forward(self, x):
        return self.linear(x)


class Broken(nn.Module):
    def __init__(self, n_inputs, n_outputs):
        super().__init__()

    def forward(self, x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")


class RowwiseLogProb(StudentT):
    def log_prob(self, params, x):
        return super().log_prob(params, x)[:, None]


class FixedAxes(Likelihood):
    """Sums over axis 1: the columns of 2-D parameters, but the batch when
    latent samples lead."""

    def log_prob(self, params, x):
        return -(x - params).square().sum(1)

    def mean(self, params):
        return params

    def sample(self, params, generator):
        return params


class NoSample(Likelihood):
    def log_prob(self, params, x):
        return -(x - params).square().sum(-1)

    def mean(self, params):
        return params


@pytest.mark.parametrize(
    "params, error, message",
    [
        ({"encoder": Wide}, ValueError,
         r"encoder Wide returned a tensor of shape \(2, 5\); expected \(2, 4\)"),
        ({"decoder": Wide}, ValueError,
         r"decoder Wide returned a tensor of shape \(2, 7\); expected \(2, 6\)"),
        ({"encoder": Broken}, ValueError,
         "encoder Broken failed on a batch of 2 rows: RuntimeError: mat1 and mat2"),
        ({"decoder": lambda n_in, n_out: "a network"}, TypeError,
         "decoder <lambda> returned str; it must return a torch.nn.Module"),
        ({"likelihood": RowwiseLogProb}, ValueError,
         r"likelihood RowwiseLogProb.log_prob returned a tensor of shape \(2, 1\); "
         r"expected \(2,\)"),
        ({"likelihood": FixedAxes}, ValueError,
         r"likelihood FixedAxes.log_prob over 3 latent samples returned a tensor of shape "
         r"\(3, 6\); expected \(3, 2\)"),
        ({"likelihood": NoSample}, TypeError, "likelihood NoSample.sample is not implemented"),
        ({"likelihood": lambda n: torch.nn.Linear(n, n)}, TypeError,
         "likelihood <lambda> returned Linear; a likelihood must be a subclass"),
        ({"likelihood": [StudentT, "poison"] * 3}, ValueError, r"Unknown likelihood \['poison'\]"),
        ({"likelihood": Beta, "architecture": "conv", "image_shape": (1, 2, 3)}, ValueError,
         "needs a likelihood with one parameter per pixel; likelihood Beta has 12"),
        ({"likelihood": StudentT(6, df=3)}, TypeError,
         "likelihood is a StudentT instance; pass its class"),
        ({"encoder": ResidualMLP(6, 4)}, TypeError,
         "encoder is a ResidualMLP instance; pass its class or a factory"),
    ],
)
def test_bad_plug_ins_are_named(make_vae, params, error, message):
    X = heavy_tailed(30)
    if params.get("likelihood") is Beta:
        X = 1 / (1 + np.exp(-X))
    with pytest.raises(error, match=message):
        make_vae(max_iter=1, **params).fit(X)


def guide_example(heading):
    """The first code block after ``heading`` in the user guide's extending page."""
    import pathlib
    import textwrap

    page = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "user_guide"
            / "extending.rst").read_text()
    after = page[page.index(heading):]
    block = after[after.index(".. code-block:: python") :].split("\n")[2:]
    code = []
    for line in block:
        if line and not line.startswith("   "):
            break
        code.append(line)
    return textwrap.dedent("\n".join(code))


def test_the_guides_subclass_of_a_built_in_likelihood(make_vae):
    """The extending page's negative binomial with one shared dispersion runs,
    and is the built-in with every column's dispersion that one."""
    from skvae.likelihoods import NegativeBinomial

    namespace = {}
    exec(guide_example("Building on a built-in likelihood"), namespace)
    shared = namespace["SharedDispersionNB"]
    assert namespace["vae"].likelihood is shared
    rng = np.random.RandomState(0)
    X = rng.poisson(np.exp(rng.normal(1.0, 0.5, size=(120, 1)) + rng.normal(size=(1, 25))))
    vae = make_vae(likelihood=shared, max_iter=20).fit(X)
    lik = vae.module_.observation.likelihoods[0]
    assert isinstance(lik, shared) and lik.log_theta.shape == (1,)
    assert lik.depth  # the parent's count_depth="auto" on 25 complete columns
    assert lik.log_theta.item() != 0.0  # learned
    built_in = NegativeBinomial(25, count_depth="observed")
    built_in.load_state_dict({**lik.state_dict(), "log_theta": lik.log_theta.expand(25)})
    params = torch.randn(4, 25, generator=torch.Generator().manual_seed(0))
    x = torch.as_tensor(X[:4], dtype=torch.float32)
    torch.testing.assert_close(lik.log_prob(params, x), built_in.log_prob(params, x))
    assert np.isfinite(vae.score_samples(X)).all()
    assert vae.sample(3, random_state=0).shape == (3, 25)
