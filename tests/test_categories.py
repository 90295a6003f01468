"""Categorical columns in real tables: categories not seen in fit
(``handle_unknown``), rare categories sharing one slot (``min_frequency``,
``max_categories``), and free text or identifiers refused by the automatic
rule."""

import os
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import logsumexp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from skvae import VAEImputer, VAETransformer
from skvae._likelihoods import Categorical, infrequent_codes, init_args
from skvae._tables import (
    MAX_AUTO_CATEGORIES,
    MIN_IDENTIFIER_CATEGORIES,
    build_observation,
    check_free_text,
    column_specs,
)

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

KNOWN = {"gaussian", "bernoulli", "categorical", "poisson", "negbinom"}
UNSEEN = "not seen in fit"


@pytest.fixture(scope="module")
def shop():
    """240 rows: a float, a city (one of them, "lonely", held by one row) and
    a plan whose rare values ("gold" 6 rows, "iron" 3, "tin" 1) can share a
    slot; the float depends on the plan."""
    rng = np.random.RandomState(0)
    n = 240
    plan = np.array(["basic"] * 130 + ["pro"] * 100 + ["gold"] * 6 + ["iron"] * 3 + ["tin"],
                    dtype=object)
    rng.shuffle(plan)
    city = rng.choice(["north", "south", "east"], n).astype(object)
    city[17] = "lonely"
    spend = np.where(plan == "pro", 2.0, 0.0) + rng.normal(size=n)
    return pd.DataFrame({"spend": spend, "city": city, "plan": plan})


def fitted(rows, **params):
    return VAETransformer(**{"hidden_layer_sizes": (8,), "max_iter": 3, "random_state": 0,
                             **params}).fit(rows)


def with_values(rows, column, values, at):
    out = rows.copy()
    out.loc[out.index[at], column] = values
    return out


# ------------------------------------------------------- handle_unknown


def test_cross_validation_with_a_category_held_by_one_row(shop):
    """The user's report: the fold that holds "lonely" out cannot fit it."""
    y = (shop["spend"] > 1).to_numpy()
    pipe = make_pipeline(VAETransformer(n_components=2, hidden_layer_sizes=(8,),
                                        max_iter=3, random_state=0),
                         LogisticRegression())
    with pytest.warns(UserWarning, match=r"1 entry of column 'city'"):
        result = cross_validate(pipe, shop, y, cv=KFold(3), error_score="raise")
    assert np.isfinite(result["test_score"]).all()


def test_unseen_categories_are_missing_entries_and_the_warning_counts_them(shop):
    vae = fitted(shop)
    assert not vae.module_.masked  # fitted on complete rows: no mask inputs
    rows = shop.iloc[:6]
    odd = with_values(with_values(rows, "city", ["mars", "venus"], [0, 3]), "plan",
                      "platinum", [3])
    holes = with_values(with_values(rows, "city", None, [0, 3]), "plan", None, [3])
    with pytest.warns(UserWarning) as caught:
        Z = vae.transform(odd)
        scores = vae.score_samples(odd)
    assert len(caught) == 2
    message = str(caught[0].message)
    for part in ["2 entries of column 'city'", "1 entry of column 'plan'",
                 "treated as missing entries", "handle_unknown='ignore'"]:
        assert part in message
    np.testing.assert_array_equal(Z, vae.transform(holes))
    np.testing.assert_array_equal(scores, vae.score_samples(holes))
    assert np.isfinite(Z).all() and np.isfinite(scores).all()
    # The other rows are as without the odd ones.
    np.testing.assert_array_equal(Z[[1, 2, 4, 5]], vae.transform(rows)[[1, 2, 4, 5]])
    with pytest.warns(UserWarning, match=UNSEEN):
        assert vae.score(odd) == pytest.approx(scores.mean())
    pd.testing.assert_frame_equal(odd, with_values(with_values(rows, "city", ["mars", "venus"],
                                                               [0, 3]), "plan", "platinum", [3]))


def test_ignore_is_silent_and_error_refuses(shop):
    odd = with_values(shop.iloc[:4], "city", "mars", [1])
    vae = fitted(shop, handle_unknown="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Z = vae.transform(odd)
        vae.score_samples(odd)
    # The setting at transform time rules, as for scikit-learn's encoders.
    vae.set_params(handle_unknown="warn")
    with pytest.warns(UserWarning, match=UNSEEN):
        np.testing.assert_array_equal(vae.transform(odd), Z)
    vae.set_params(handle_unknown="error")
    for method in (vae.transform, vae.score_samples, vae.score):
        with pytest.raises(ValueError, match=r"Column 'city' has categories not seen in "
                                             r"fit: \['mars'\]"):
            method(odd)


def test_inverse_transform_and_sample_are_unaffected(shop):
    vae = fitted(shop, handle_unknown="error")
    Z = vae.transform(shop.iloc[:5])
    back = vae.inverse_transform(Z)
    assert set(back["city"]) <= set(shop["city"])
    assert set(vae.sample(50, random_state=0)["plan"]) <= set(shop["plan"])


def test_unseen_categories_in_an_array_are_missing_entries():
    rng = np.random.RandomState(0)
    X = np.column_stack([rng.normal(size=80), rng.randint(3, size=80)]).astype(float)
    vae = fitted(X, likelihood=["gaussian", "categorical"])
    odd = X[:5].copy()
    odd[2, 1] = 7.0
    holes = X[:5].copy()
    holes[2, 1] = np.nan
    with pytest.warns(UserWarning, match=r"1 entry of column 1"):
        np.testing.assert_array_equal(vae.transform(odd), vae.transform(holes))


def test_a_model_fitted_on_incomplete_rows_takes_them_too(shop):
    holes = with_values(shop, "spend", np.nan, list(range(0, 240, 7)))
    vae = fitted(holes, handle_unknown="ignore")
    assert vae.module_.masked
    odd = with_values(holes.iloc[:6], "plan", "platinum", [1])
    np.testing.assert_array_equal(vae.score_samples(odd),
                                  vae.score_samples(with_values(odd, "plan", None, [1])))


def test_partial_fit_on_a_chunk_with_a_new_category(shop):
    vae = VAETransformer(hidden_layer_sizes=(8,), random_state=0)
    first = shop[shop["city"] != "lonely"]
    vae.partial_fit(first)
    with pytest.warns(UserWarning, match=r"1 entry of column 'city'"):
        vae.partial_fit(shop)
    assert vae.n_iter_ == 2 and np.isfinite(vae.loss_curve_).all()
    with pytest.raises(ValueError, match=UNSEEN):
        vae.set_params(handle_unknown="error").partial_fit(shop)


def test_imputer_fills_an_unseen_category_like_a_missing_entry(shop):
    holes = with_values(shop, "city", None, list(range(0, 240, 11)))
    imputer = VAEImputer(VAETransformer(n_components=2, hidden_layer_sizes=(8,), max_iter=3),
                         random_state=0).fit(holes)
    rows = holes.iloc[:8]
    odd = with_values(rows, "city", "mars", [1, 2])
    expected = imputer.transform(with_values(rows, "city", None, [1, 2]))
    with pytest.warns(UserWarning, match=r"2 entries of column 'city'"):
        filled = imputer.transform(odd)
    pd.testing.assert_frame_equal(filled, expected)
    assert set(filled["city"]) <= set(shop["city"])
    assert filled["city"].notna().all()
    # The estimator's setting rules.
    strict = VAEImputer(VAETransformer(n_components=2, hidden_layer_sizes=(8,), max_iter=3,
                                       handle_unknown="error"), random_state=0).fit(holes)
    with pytest.raises(ValueError, match=UNSEEN):
        strict.transform(odd)


# ------------------------------------------------- infrequent categories


@pytest.mark.parametrize("min_frequency, max_categories", [
    (None, None), (3, None), (10, None), (0.05, None), (0.3, None), (None, 1), (None, 2),
    (None, 4), (None, 9), (2, 3), (0.01, 5),
])
def test_grouping_is_onehotencoders(min_frequency, max_categories):
    """The categories grouped are those OneHotEncoder calls infrequent."""
    rng = np.random.RandomState(1)
    counts = rng.choice([1, 2, 3, 5, 8, 20, 40], size=8)
    values = np.repeat([f"c{i}" for i in range(8)], counts).reshape(-1, 1)
    codes = infrequent_codes(counts, min_frequency, max_categories)
    if min_frequency is None and max_categories is None:
        assert codes == ()
        return
    encoder = OneHotEncoder(min_frequency=min_frequency, max_categories=max_categories,
                            handle_unknown="infrequent_if_exist").fit(values)
    expected = encoder.infrequent_categories_[0]
    assert [f"c{i}" for i in codes] == ([] if expected is None else sorted(expected))


def grouped(counts, min_frequency=None, max_categories=None):
    column = pd.Series(np.repeat([f"c{i}" for i in range(len(counts))], counts), name="c")
    options = {"min_frequency": min_frequency, "max_categories": max_categories}
    return Categorical.from_columns([column], options).double()


def test_grouped_log_probabilities_sum_to_one():
    """Over every category of each column (brute force: every code scored),
    and each is its slot's probability times its share of the slot."""
    counts = [50, 3, 20, 1, 2, 9]
    lik = grouped(counts, min_frequency=5)  # c1, c3 and c4 share a slot
    assert lik.infrequent == [(1, 3, 4)] and lik.n_slots == [4] and lik.n_params == 4
    params = torch.randn(7, lik.n_params, generator=torch.Generator().manual_seed(0),
                         dtype=torch.float64)
    terms = np.column_stack([
        lik.log_prob(params, torch.full((7, 1), code, dtype=torch.float64)).numpy()
        for code in range(len(counts))
    ])
    np.testing.assert_allclose(logsumexp(terms, axis=1), 0.0, atol=1e-12)
    slots = torch.log_softmax(params, -1).numpy()  # c0, c2, c5, then the group
    share = np.log(np.array([3, 1, 2]) / 6)
    expected = np.column_stack([slots[:, 0], slots[:, 3] + share[0], slots[:, 1],
                                slots[:, 3] + share[1], slots[:, 3] + share[2], slots[:, 2]])
    np.testing.assert_allclose(terms, expected, rtol=1e-12)


def test_several_columns_group_on_their_own():
    columns = [pd.Series(np.repeat(list("abcd"), [10, 1, 1, 8])),
               pd.Series(np.repeat(list("xyz"), [5, 5, 5]))]
    lik = Categorical.from_columns(columns, {"min_frequency": 2}).double()
    assert lik.infrequent == [(1, 2), ()] and lik.n_slots == [3, 3]
    params = torch.randn(4, lik.n_params, generator=torch.Generator().manual_seed(1),
                         dtype=torch.float64)
    grid = torch.cartesian_prod(torch.arange(4.0), torch.arange(3.0)).double()
    per_row = torch.stack([lik.log_prob(params, code.expand(4, 2)) for code in grid], -1)
    np.testing.assert_allclose(torch.logsumexp(per_row, -1).numpy(), 0.0, atol=1e-12)
    # The network sees one input per slot: b and c the same one.
    inputs = lik.network_input(torch.tensor([[1.0, 0.0], [2.0, 2.0]], dtype=torch.float64))
    assert torch.equal(inputs[0, :3], inputs[1, :3]) and inputs.shape == (2, 6)


def test_draws_within_the_slot_follow_the_training_counts():
    counts = [50, 3, 20, 1, 2, 9]
    lik = grouped(counts, min_frequency=5)
    params = torch.zeros(20000, lik.n_params, dtype=torch.float64)
    params[:, 3] = 30.0  # (nearly) always the infrequent slot
    state = torch.get_rng_state()
    first = lik.sample(params, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is untouched
    assert torch.equal(first, lik.sample(params, torch.Generator().manual_seed(0)))
    drawn = np.bincount(first.numpy().astype(int).ravel(), minlength=6)
    assert drawn[[0, 2, 5]].sum() == 0  # only the slot's real categories
    np.testing.assert_allclose(drawn[[1, 3, 4]] / 20000, np.array([3, 1, 2]) / 6, atol=0.015)
    # The mean and the imputation of the slot: its most frequent category (c1).
    assert (lik.mean(params[:3]) == 1).all()
    weights = torch.full((2, 3), 0.5, dtype=torch.float64)
    assert (lik.impute(params[:3].expand(2, 3, -1), weights) == 1).all()


def test_a_fitted_model_scores_grouped_categories_by_their_share(shop):
    vae = fitted(shop, min_frequency=8)
    lik = vae.module_.observation.likelihoods[1]  # the city and plan columns
    assert lik.categories[1] == ("basic", "gold", "iron", "pro", "tin")
    assert lik.counts[1] == (130, 6, 3, 100, 1) and lik.infrequent == [(1,), (1, 2, 4)]
    rows = shop.iloc[:3]
    score = {plan: vae.score_samples(with_values(rows, "plan", plan, [0, 1, 2]))
             for plan in ("gold", "iron", "tin")}
    # The encoder sees the slot, not the category: only the share differs.
    np.testing.assert_allclose(score["gold"] - score["tin"], np.log(6), rtol=1e-9)
    np.testing.assert_allclose(score["iron"] - score["tin"], np.log(3), rtol=1e-9)
    drawn = vae.sample(400, random_state=0)
    assert set(drawn["plan"]) <= set(shop["plan"]) and set(drawn["city"]) <= set(shop["city"])
    back = vae.inverse_transform(vae.transform(shop))
    assert not set(back["plan"]) & {"iron", "tin"}  # the slot's mode is "gold"
    # One input per slot: "lonely" has one of its own (a group of one).
    assert vae.module_.encoder[0].in_features == 1 + 4 + 3


def test_max_categories_bounds_the_slots(shop):
    vae = fitted(shop, max_categories=2)
    assert vae.module_.observation.likelihoods[1].n_slots == [2, 2]


def test_no_grouping_by_default_and_state_unchanged(shop):
    lik = fitted(shop).module_.observation.likelihoods[1]
    assert lik.infrequent == [(), ()] and lik.n_slots == lik.n_categories
    assert lik.state_dict() == {}
    args, kwargs = init_args(lik)
    assert kwargs == {} and args[2] is None  # no grouping recorded


def test_bad_grouping_arguments_are_named():
    with pytest.raises(ValueError, match="counts has"):
        Categorical([("a", "b")], counts=[(1,)])
    with pytest.raises(ValueError, match="not all in 0..1"):
        Categorical([("a", "b")], counts=[(1, 1)], infrequent=[(2,)])
    with pytest.raises(ValueError, match="need positive counts"):
        Categorical([("a", "b")], infrequent=[(0, 1)])


def test_grouped_models_round_trip_with_their_counts(shop):
    vae = fitted(shop, min_frequency=0.05)
    sio = pytest.importorskip("skops.io")
    data = sio.dumps(vae)
    for loaded in (pickle.loads(pickle.dumps(vae)),
                   sio.loads(data, trusted=["skvae._estimator.VAETransformer"])):
        lik = loaded.module_.observation.likelihoods[1]
        original = vae.module_.observation.likelihoods[1]
        assert lik.counts == original.counts and lik.infrequent == original.infrequent
        assert lik.categories == original.categories
        np.testing.assert_array_equal(loaded.score_samples(shop), vae.score_samples(shop))
        pd.testing.assert_frame_equal(loaded.sample(30, random_state=1),
                                      vae.sample(30, random_state=1))


def test_grouping_is_fixed_at_the_first_fit(shop):
    vae = fitted(shop, min_frequency=8)
    vae.set_params(min_frequency=2, warm_start=True)
    with pytest.raises(ValueError, match="min_frequency was changed"):
        vae.fit(shop)


def test_a_model_saved_before_grouping_loads_and_agrees():
    """Pickled by the code before handle_unknown, min_frequency and
    max_categories existed: a VAETransformer(2, hidden_layer_sizes=(8,),
    max_iter=3, random_state=0) fitted on the 120 saved rows, with the outputs
    it gave then."""
    path = os.path.join(os.path.dirname(__file__), "data",
                        "categorical_model_before_grouping.pkl")
    with open(path, "rb") as file:
        saved = pickle.load(file)
    vae, rows, outputs = saved["model"], saved["rows"], saved["outputs"]
    params = vae.get_params()
    assert params["handle_unknown"] == "warn" and params["min_frequency"] is None
    assert params["max_categories"] is None
    np.testing.assert_allclose(vae.transform(rows), outputs["transform"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vae.score_samples(rows), outputs["score_samples"], rtol=1e-5)
    lik = vae.module_.observation.likelihoods[1]
    assert lik.counts is None and lik.infrequent == [(), ()]
    with pytest.warns(UserWarning, match=UNSEEN):
        vae.transform(with_values(rows.iloc[:3], "city", "mars", [0]))
    again = pickle.loads(pickle.dumps(vae))
    np.testing.assert_array_equal(again.transform(rows), vae.transform(rows))
    again.set_params(warm_start=True).fit(rows)  # and trains on
    assert np.isfinite(again.loss_curve_).all()


class TwoRanks:
    """A stand-in for two ranks holding the same shard."""

    distributed = True

    def all_gather(self, value):
        return [value, value]

    def checked(self, function, *args):
        return function(*args)


def test_distributed_categories_are_built_from_every_ranks_counts():
    frame = pd.DataFrame({"c": np.repeat(list("abc"), [6, 2, 1]).astype(object)})
    specs = column_specs(frame, "auto", KNOWN)
    options = {"min_frequency": 3}
    lik = build_observation(frame, specs, options, TwoRanks()).likelihoods[0]
    assert lik.counts == [(12, 4, 2)] and lik.infrequent == [(2,)]  # b is not rare on all
    alone = build_observation(frame, specs, options).likelihoods[0]
    assert alone.counts == [(6, 2, 1)] and alone.infrequent == [(1, 2)]


# ------------------------------------------------ free text, identifiers


def identifiers(n_rows, n_distinct, rng):
    """A column of ``n_distinct`` labels over ``n_rows`` rows, each at least once."""
    labels = np.array([f"id{i:05d}" for i in range(n_distinct)], dtype=object)
    return np.concatenate([labels, rng.choice(labels, n_rows - n_distinct)])


def test_identifiers_are_refused_with_the_ways_out():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.normal(size=100), "customer": identifiers(100, 60, rng)})
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    with pytest.raises(ValueError) as caught:
        vae.fit(frame)
    message = str(caught.value)
    for part in ["Column 'customer' has 60 distinct values in 100 observed entries",
                 "Drop the column", "min_frequency", "max_categories",
                 "likelihood={'customer': 'categorical'}"]:
        assert part in message
    assert not hasattr(vae, "module_")  # refused before any training


def test_free_text_over_the_limit_is_refused_and_grouping_lets_it_in():
    rng = np.random.RandomState(0)
    n = 4000
    common = rng.choice([f"title{i}" for i in range(20)], n - MAX_AUTO_CATEGORIES)
    rare = [f"text{i}" for i in range(MAX_AUTO_CATEGORIES)]  # each once
    frame = pd.DataFrame({"x": rng.normal(size=n),
                          "title": np.concatenate([common, rare]).astype(object)})
    with pytest.raises(ValueError, match=r"Column 'title' has 1020 distinct values"):
        fitted(frame, max_iter=1)
    for params in ({"min_frequency": 2}, {"max_categories": 50},
                   {"likelihood": {"title": "categorical"}}):
        vae = fitted(frame, max_iter=1, batch_size=1000, **params)
        lik = vae.module_.observation.likelihoods[1]
        expected = 1020 if "likelihood" in params else (21 if "min_frequency" in params else 50)
        assert lik.n_params == expected


@pytest.mark.parametrize("n_distinct, n_observed, refused", [
    (MAX_AUTO_CATEGORIES, 100 * MAX_AUTO_CATEGORIES, False),
    (MAX_AUTO_CATEGORIES + 1, 100 * MAX_AUTO_CATEGORIES, True),
    (MIN_IDENTIFIER_CATEGORIES, MIN_IDENTIFIER_CATEGORIES, False),
    (MIN_IDENTIFIER_CATEGORIES + 1, 2 * MIN_IDENTIFIER_CATEGORIES + 1, True),
    (MIN_IDENTIFIER_CATEGORIES + 1, 2 * MIN_IDENTIFIER_CATEGORIES + 2, False),
])
def test_the_documented_limits(n_distinct, n_observed, refused):
    column = pd.Series(identifiers(n_observed, n_distinct, np.random.RandomState(0)))
    column = pd.concat([column, pd.Series([None] * 500)])  # missing entries do not count
    if refused:
        with pytest.raises(ValueError, match="looks like free text or an identifier"):
            check_free_text(column, "c", {})
    else:
        check_free_text(column, "c", {})


def test_only_the_automatic_rule_refuses():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"customer": identifiers(80, 70, rng)})
    fitted(frame, likelihood="categorical", max_iter=1)
    fitted(frame, likelihood=["categorical"], max_iter=1)
    with pytest.raises(ValueError, match="customer"):
        fitted(frame, likelihood={"customer": "auto"}, max_iter=1)


def test_too_little_grouping_is_still_refused():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"customer": identifiers(100, 60, rng)})
    with pytest.raises(ValueError, match=r"has 55 distinct values \(after grouping the rare "
                                         r"ones\) in 100 observed entries"):
        fitted(frame, max_categories=55)


def test_a_categorical_pickled_before_grouping_is_rebuilt():
    """A likelihood object from before the grouping attributes (in files that
    held torch objects) is completed as an ungrouped one."""
    lik = Categorical([("a", "b", "c")])
    state = {k: v for k, v in lik.__dict__.items()
             if k not in ("n_slots", "counts", "infrequent", "grouped")}
    old = Categorical.__new__(Categorical)
    old.__setstate__(state)
    assert old.n_slots == [3] and not old.grouped and old.infrequent == [()]
    params = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    codes = torch.tensor([[0.0], [1.0], [2.0], [1.0]])
    assert torch.equal(old.log_prob(params, codes), lik.log_prob(params, codes))


def test_imputer_with_grouped_categories_fills_in_real_ones(shop):
    missing = list(range(0, 240, 5))
    holes = with_values(shop, "plan", None, missing)
    vae = VAETransformer(n_components=2, hidden_layer_sizes=(8,), max_iter=3, min_frequency=8)
    means = VAEImputer(vae, random_state=0).fit(holes).transform(holes)
    # "gold" stands for its slot.
    assert set(means["plan"].iloc[missing]) <= {"basic", "pro", "gold"}
    draws = VAEImputer(vae, sample_posterior=True, random_state=0).fit(holes).transform(holes)
    assert draws["plan"].notna().all() and set(draws["plan"]) <= set(shop["plan"])


def test_whole_number_columns_have_no_unseen_values():
    """A discrete column scores any whole number (its tails): under "warn" a
    new extreme is scored, not treated as missing, and nothing is said."""
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"rating": rng.randint(1, 6, 120), "x": rng.normal(size=120)})
    vae = fitted(frame)
    assert vae.column_likelihoods_["rating"]["likelihood"] == "discrete"
    odd = frame.iloc[:4].copy()
    odd.loc[odd.index[0], "rating"] = 9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = vae.score_samples(odd)
    np.testing.assert_array_equal(scores, vae.set_params(handle_unknown="error").score_samples(odd))
    assert np.isfinite(scores).all()
