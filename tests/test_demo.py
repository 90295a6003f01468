"""The digits demo (skvae._demo): its figure and helpers."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from skvae import VAETransformer
from skvae._demo import draw_figure, robust_limits

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_robust_limits_ignore_a_few_outlying_codes():
    values = np.concatenate([np.random.RandomState(0).uniform(-1, 1, 500), [80.0, -60.0]])
    low, high = robust_limits(values)
    assert -1.5 < low < -0.9 and 0.9 < high < 1.5
    assert robust_limits(np.zeros(10)) == (-1.0, 1.0)


def test_figure_is_drawn(digits, tmp_path):
    pytest.importorskip("matplotlib")
    X, y = digits
    vae = VAETransformer(hidden_layer_sizes=(16,), max_iter=2, random_state=0).fit(X[:200])
    pca = PCA(n_components=2).fit(X[:200])
    path = tmp_path / "demo.png"
    draw_figure(vae, pca, X[200:300], y[200:300], path)
    assert path.stat().st_size > 0
