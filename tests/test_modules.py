"""Architectures (skvae._modules): the convolutional one on images."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression


@pytest.mark.slow
def test_conv_architecture_on_digits(make_vae, digits):
    X, y = digits
    vae = make_vae(hidden_layer_sizes=(32,), architecture="conv", image_shape=(1, 8, 8),
                   conv_channels=(8, 16), likelihood="bernoulli", n_components=8, max_iter=30,
                   batch_size=32, learning_rate_init=3e-3)
    Z = vae.fit_transform(X[:600])
    assert Z.shape == (600, 8)
    recon = vae.inverse_transform(Z)
    assert recon.shape == (600, 64) and recon.min() >= 0 and recon.max() <= 1
    assert np.mean((recon - X[:600]) ** 2) < 0.6 * np.mean((X[:600] - X[:600].mean(0)) ** 2)
    assert vae.sample(3, random_state=0).shape == (3, 64)
    accuracy = LogisticRegression(max_iter=2000).fit(Z, y[:600]).score(vae.transform(X[600:900]), y[600:900])
    assert accuracy > 0.6


def test_conv_on_odd_sized_multichannel_images(make_vae):
    X = np.random.RandomState(0).uniform(size=(20, 2 * 7 * 5))
    vae = make_vae(hidden_layer_sizes=(32,), architecture="conv", image_shape=(2, 7, 5),
                   conv_channels=(4,), max_iter=2).fit(X)
    assert vae.inverse_transform(vae.transform(X)).shape == X.shape
    assert np.isfinite(vae.score_samples(X, n_importance_samples=3)).all()


@pytest.mark.parametrize(
    "params, message",
    [
        ({"image_shape": (1, 8, 7)}, r"holds 56 pixels but X has 64 features"),
        ({"image_shape": None}, "needs image_shape"),
        ({"image_shape": (1, 8, 8), "likelihood": "categorical"}, "one parameter per pixel"),
    ],
)
def test_bad_image_settings(make_vae, digits, params, message):
    with pytest.raises(ValueError, match=message):
        make_vae(hidden_layer_sizes=(32,), max_iter=1, architecture="conv", **params).fit(
            digits[0][:20]
        )
