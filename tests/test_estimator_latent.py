"""The latent space's size: sample's decoder means, kl_per_component_,
active_components_ and n_components="auto"."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from skvae import VAETransformer
from skvae._data import draw_seed, make_generator, to_tensor
from skvae._elbo import Objective
from skvae._estimator import coded_rows
from skvae._fitting import latent_usage

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Settings under which the fits below converge (tol) on the 300-row low-rank
# data in well under a second each.
CONVERGED = {"hidden_layer_sizes": (32,), "learning_rate_init": 3e-3, "max_iter": 300}


def prior_draws(n_samples, n_components, random_state):
    """The codes ``sample(n_samples, random_state)`` decodes (fewer than 8192:
    one batch), from the stream that follows the seed of the likelihood's."""
    generator = make_generator(draw_seed(random_state), "cpu")
    torch.randint(2**31 - 1, (1,), generator=generator)
    return torch.randn((n_samples, n_components), generator=generator).numpy()


@pytest.fixture(scope="module")
def fitted(low_rank):
    return VAETransformer(n_components=6, random_state=0, **CONVERGED).fit(low_rank)


@pytest.fixture(scope="module")
def auto(low_rank):
    return VAETransformer(n_components="auto", random_state=0, **CONVERGED).fit(low_rank)


# ------------------------------------------------------------------- sample


def test_sample_without_noise_is_the_decoder_mean_at_the_prior_draws(fitted, low_rank):
    means = fitted.sample(50, random_state=3, noise=False)
    assert means.shape == (50, 8) and means.dtype == np.float64
    np.testing.assert_array_equal(means, fitted.sample(50, random_state=3, noise=False))
    codes = prior_draws(50, 6, random_state=3)
    np.testing.assert_allclose(means, fitted.inverse_transform(codes), rtol=1e-5, atol=1e-5)
    # The draws scatter around the same means: the codes are shared.
    drawn = fitted.sample(50, random_state=3)
    assert not np.allclose(drawn, means)
    assert np.abs(drawn - means).mean() < 0.2 * low_rank.std(0).mean()


def test_draws_and_means_share_their_codes_past_the_first_batch(fitted, low_rank):
    # sample works 8192 rows at a time: the codes of later batches must not
    # depend on whether noise was drawn for the earlier ones.
    means = fitted.sample(8200, random_state=0, noise=False)[8192:]
    drawn = fitted.sample(8200, random_state=0)[8192:]
    assert np.abs(drawn - means).mean() < 0.2 * low_rank.std(0).mean()


def test_sample_without_noise_keeps_the_table_types(make_vae, table):
    vae = make_vae(max_iter=10).fit(table)
    means = vae.sample(30, random_state=0, noise=False)
    assert isinstance(means, pd.DataFrame)
    assert list(means.columns) == list(table.columns)
    assert list(means.dtypes) == list(table.dtypes)
    expected = vae.inverse_transform(prior_draws(30, vae.n_components_, random_state=0))
    # Categories, counts and booleans: the most probable value, as inverse_transform.
    for name in ["group", "city", "visits", "member"]:
        pd.testing.assert_series_equal(means[name], expected[name])
    np.testing.assert_allclose(means["height"], expected["height"], rtol=1e-5)
    drawn = vae.sample(30, random_state=0)
    assert list(drawn.dtypes) == list(table.dtypes)


def test_bernoulli_means_are_grey_levels_and_draws_binary(make_vae, digits):
    X, _ = digits
    vae = make_vae(likelihood="bernoulli", max_iter=3, bound_outputs=False).fit(X[:200])
    means = vae.sample(20, random_state=0, noise=False)
    assert ((means > 0) & (means < 1)).all()
    assert set(np.unique(vae.sample(20, random_state=0))) <= {0.0, 1.0}
    # Bounded (the default): a pixel that is 0 in every training image stays
    # 0, in means and draws; the others keep grey-level means and 0/1 draws.
    vae.set_params(bound_outputs=True)
    means = vae.sample(20, random_state=0, noise=False)
    blank = X[:200].max(0) == 0
    assert blank.any() and (means[:, blank] == 0).all()
    assert ((means[:, ~blank] > 0) & (means[:, ~blank] < 1)).all()
    drawn = vae.sample(50, random_state=0)
    assert set(np.unique(drawn)) == {0.0, 1.0} and (drawn[:, blank] == 0).all()


def test_noise_must_be_a_boolean(fitted):
    with pytest.raises(ValueError, match="noise must be True or False"):
        fitted.sample(2, noise="mean")


# --------------------------------------------------------- latent usage


def test_kl_per_component_is_the_elbo_kl_term_split_by_dimension(fitted, low_rank):
    kl = fitted.kl_per_component_
    assert kl.shape == (6,) and kl.dtype == np.float64
    assert (kl >= 0).all()
    module = fitted.module_
    x = to_tensor(coded_rows(fitted, low_rank), "cpu")
    with torch.no_grad():
        out = Objective()(module, x, torch.zeros(1, 1, 6))
    assert kl.sum() == pytest.approx(float(out.kl.mean()), rel=1e-5)
    np.testing.assert_array_equal(fitted.active_components_, kl > 0.1)


def test_rank_two_data_use_two_of_six_dimensions(fitted):
    assert fitted.active_components_.dtype == bool
    assert fitted.active_components_.sum() == 2
    used = np.sort(fitted.kl_per_component_)[::-1]
    assert used[1] > 1.0 and used[2] < 0.1


def test_partial_fit_summarises_its_chunk(make_vae, low_rank):
    vae = make_vae(n_components=3)
    for chunk in np.array_split(low_rank, 3):
        vae.partial_fit(chunk)
    assert vae.kl_per_component_.shape == (3,)
    expected = latent_usage(vae.module_, coded_rows(vae, chunk), torch.device("cpu"))
    np.testing.assert_array_equal(vae.kl_per_component_, expected["kl_per_component_"])


def test_callback_checkpoints_carry_their_epochs_usage(make_vae, low_rank):
    checkpoints = []

    class Keep:
        def setup(self, estimator, context):
            pass

        def teardown(self, estimator, context):
            pass

        def on_fit_task_begin(self, estimator, context):
            pass

        def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
            if context.task_name == "epoch":
                checkpoints.append(fitted_estimator)

    vae = make_vae(n_components=3, max_iter=3).set_callbacks(Keep()).fit(low_rank)
    assert len(checkpoints) == 3
    np.testing.assert_allclose(checkpoints[-1].kl_per_component_, vae.kl_per_component_)
    assert not np.allclose(checkpoints[0].kl_per_component_, vae.kl_per_component_)


# ------------------------------------------------------ n_components="auto"


def test_auto_chooses_the_used_dimensions(auto, low_rank):
    vae = auto
    assert vae.n_components == "auto"
    assert vae.n_components_ == 2
    assert vae.kl_per_component_.shape == (2,) and vae.active_components_.all()
    Z = vae.transform(low_rank)
    assert Z.shape == (300, 2)
    assert vae.inverse_transform(Z).shape == (300, 8)
    assert vae.sample(4, random_state=0).shape == (4, 8)
    assert vae.sample(4, random_state=0, noise=False).shape == (4, 8)
    assert vae.score_samples(low_rank[:5]).shape == (5,)
    assert list(vae.get_feature_names_out()) == ["vaetransformer0", "vaetransformer1"]
    with pytest.raises(ValueError, match="n_components=2"):
        vae.inverse_transform(np.zeros((1, 8)))
    # Reproducible: the first fit is seeded by random_state too.
    again = VAETransformer(n_components="auto", random_state=0, **CONVERGED).fit(low_rank)
    np.testing.assert_array_equal(again.transform(low_rank), Z)


def test_a_saved_auto_model_keeps_its_size_and_usage(auto, low_rank):
    vae = auto
    loaded = pickle.loads(pickle.dumps(vae))
    assert loaded.n_components == "auto" and loaded.n_components_ == vae.n_components_
    np.testing.assert_array_equal(loaded.kl_per_component_, vae.kl_per_component_)
    np.testing.assert_array_equal(loaded.active_components_, vae.active_components_)
    np.testing.assert_array_equal(loaded.transform(low_rank), vae.transform(low_rank))
    np.testing.assert_array_equal(loaded.sample(3, random_state=0, noise=False),
                                  vae.sample(3, random_state=0, noise=False))


def test_auto_with_one_feature_needs_no_first_fit(make_vae, low_rank):
    vae = make_vae(n_components="auto").fit(low_rank[:, :1])
    assert vae.n_components_ == 1 and vae.transform(low_rank[:3, :1]).shape == (3, 1)


def test_auto_with_clone_pandas_output_and_partial_fit(low_rank):
    df = pd.DataFrame(low_rank, columns=[f"f{i}" for i in range(8)])
    vae = VAETransformer(n_components="auto", random_state=0, **CONVERGED)
    copy = clone(vae)
    assert copy.get_params() == vae.get_params()
    copy.set_output(transform="pandas").fit(df)
    out = copy.transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == list(copy.get_feature_names_out())
    assert out.shape[1] == copy.n_components_
    with pytest.raises(ValueError, match='n_components="auto" needs fit'):
        clone(vae).partial_fit(low_rank)
    # A model fitted with "auto" goes on training at its chosen size.
    copy.partial_fit(df)
    assert copy.transform(df).shape[1] == copy.n_components_
    assert copy.kl_per_component_.shape == (copy.n_components_,)


@pytest.mark.slow
def test_auto_in_a_grid_search(low_rank):
    vae = VAETransformer(random_state=0, **CONVERGED)
    search = GridSearchCV(vae, {"n_components": ["auto", 1]}, cv=2).fit(low_rank)
    assert search.best_params_ == {"n_components": "auto"}
    assert search.best_estimator_.n_components_ == 2


@pytest.mark.parametrize("bad", ["mle", 0, 1.5])
def test_n_components_must_be_a_positive_int_or_auto(low_rank, bad):
    with pytest.raises(ValueError, match="n_components"):
        VAETransformer(n_components=bad).fit(low_rank)
