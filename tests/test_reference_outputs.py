"""The fitted models of ``reference_models.py`` give the outputs recorded in
``data/reference_outputs.npz``: bit for bit on the kind of machine that recorded
them, and to float32's precision elsewhere (another CPU's kernels round sums
differently), so that a refactoring is seen to move no number."""

import os
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from reference_models import PATH, cases, machine, outputs, rows


@pytest.fixture(scope="module")
def recorded():
    return np.load(PATH)


@pytest.fixture(scope="module")
def current():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few epochs on purpose
        return outputs()


def test_every_recorded_output_is_computed(recorded, current):
    assert set(current) == set(recorded.files) - {"__machine__"}


@pytest.mark.parametrize("name", sorted(set(np.load(PATH).files) - {"__machine__"}))
def test_outputs_match_the_recorded_ones(recorded, current, name):
    expected, got = recorded[name], current[name]
    assert got.shape == expected.shape
    if str(recorded["__machine__"]) == machine():
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# Models pickled by the code before the fitting refactor (the commit that added
# the reference outputs), from the same cases: files saved then still load.
SAVED = os.path.join(os.path.dirname(PATH), "{}_model_before_fitrun.pkl")


def load_saved(name):
    with open(SAVED.format(name), "rb") as file:
        return pickle.load(file)


@pytest.mark.parametrize("name", ["mixed", "chunks"])
def test_models_saved_before_the_refactor_load_and_agree(name):
    """They give what they gave when saved (recorded by that code)."""
    vae = load_saved(name)
    X = rows(name)
    recorded = np.load(os.path.join(os.path.dirname(PATH), "saved_models_outputs.npz"))
    exact = str(recorded["__machine__"]) == machine()
    compare = (np.testing.assert_array_equal if exact
               else lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4))
    compare(vae.transform(X), recorded[f"{name}/transform"])
    compare(vae.score_samples(X), recorded[f"{name}/score_samples"])


def test_a_model_saved_before_the_refactor_trains_on_as_a_new_one():
    """Its optimiser state and random stream came back: one more pass of
    partial_fit gives what it gives on the model fitted by today's code."""
    make, fit = cases()["chunks"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        today, X = fit(make())
    saved = load_saved("chunks")
    today.partial_fit(X)
    saved.partial_fit(X)
    np.testing.assert_allclose(saved.transform(X), today.transform(X), rtol=1e-6, atol=1e-7)
