"""
====================================
Reconstructing and generating digits
====================================

A VAE is a generative model: besides encoding rows (``transform``) it decodes
latent codes back to the feature space (``inverse_transform``) and draws new
rows (``sample``). This example fits a Bernoulli VAE with eight latent
dimensions to the 8x8 digits and shows

* test images next to their reconstructions, ``inverse_transform(transform(X))``;
* new images, ``sample(noise=False)``: the decoder's mean at codes drawn from
  the prior N(0, I), which is what to show for images;
* what ``sample`` returns by default: pixels drawn from the Bernoulli
  likelihood, so black-and-white images.
"""

# %%
# Fit on the training digits
# --------------------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skvae import VAETransformer

X, y = load_digits(return_X_y=True)
X = X / 16.0  # grey levels in [0, 1] for the Bernoulli likelihood
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)

vae = VAETransformer(
    n_components=8,
    hidden_layer_sizes=(128, 64),
    likelihood="bernoulli",
    max_iter=150,
    random_state=0,
)
# The example trains for a fixed, small number of epochs to run quickly; the
# loss is still creeping down at the end, which the estimator would warn about.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    vae.fit(X_train)
print(f"held-out bound on log p(x): {vae.score(X_test):.2f} nats per image")


def show(images, axes_row, title):
    for ax, image in zip(axes_row, images, strict=True):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    axes_row[0].set_ylabel(title, rotation=0, ha="right", va="center")


# %%
# Reconstructions
# ---------------
# ``transform`` gives the posterior mean of each test image's code and
# ``inverse_transform`` the decoder's mean for that code: for a Bernoulli
# likelihood, the probability that each pixel is "on".
n_shown = 10
reconstructed = vae.inverse_transform(vae.transform(X_test[:n_shown]))

fig, axes = plt.subplots(2, n_shown, figsize=(10, 2.6), layout="constrained")
show(X_test[:n_shown], axes[0], "test image")
show(reconstructed, axes[1], "reconstruction")
plt.show()

# %%
# New digits from the prior
# -------------------------
# ``sample(noise=False)`` draws codes from the prior N(0, I) and returns the
# decoder's mean for each, what ``inverse_transform`` gives for those codes:
# smooth new images. By default ``sample`` goes one step further and draws the
# pixels themselves from the likelihood p(x | z), independently of one
# another, which for a Bernoulli model gives binary images: a fair draw from
# the model, but a poor picture of what it has learned. The same
# ``random_state`` gives the same codes, so each column shows one code.
decoded_means = vae.sample(n_shown, random_state=0, noise=False)
drawn = vae.sample(n_shown, random_state=0)

fig, axes = plt.subplots(2, n_shown, figsize=(10, 2.6), layout="constrained")
show(decoded_means, axes[0], "sample(noise=False)")
show(drawn, axes[1], "sample()")
plt.show()

# %%
# Reconstruction error
# --------------------
# The mean absolute error of the reconstructions, in grey levels of the
# original 0-16 scale, on the training and test images. The gap between them
# is small: eight latent dimensions do not let the model memorise the
# training set.
for name, part in [("train", X_train), ("test", X_test)]:
    error = np.abs(vae.inverse_transform(vae.transform(part)) - part).mean()
    print(f"{name}: mean absolute error = {16 * error:.2f} grey levels")
