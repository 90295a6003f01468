"""The fitted models of ``reference_models.py`` give the outputs recorded in
``data/reference_outputs.npz``: bit for bit on the kind of machine that recorded
them, and to float32's precision elsewhere (another CPU's kernels round sums
differently), so that a refactoring is seen to move no number."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from reference_models import PATH, machine, outputs


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
