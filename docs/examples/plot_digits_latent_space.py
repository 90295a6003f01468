"""
========================================
A 2-D latent space of handwritten digits
========================================

A variational autoencoder with two latent dimensions gives a picture of the data
in the same way as a two-component PCA, but its encoder is a neural network, so
the map from pixels to the plane can bend. Here both are fitted to the 8x8 digits
of scikit-learn, and each image is drawn at its latent code, coloured by the
digit it shows (the labels are not used for fitting).

The pixels are grey levels from 0 to 16; divided by 16 they lie in [0, 1], which
suits the Bernoulli likelihood usually used for images.
"""

# %%
# Fit PCA and a VAE
# -----------------
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from skvae import VAETransformer

X, y = load_digits(return_X_y=True)
X = X / 16.0

pca = PCA(n_components=2, random_state=0)
Z_pca = pca.fit_transform(X)

vae = VAETransformer(
    n_components=2,
    hidden_layer_sizes=(128, 64),
    likelihood="bernoulli",
    max_iter=100,
    random_state=0,
)
# 100 epochs keep the example fast; the loss is still creeping down at the
# end, which the estimator would warn about.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    Z_vae = vae.fit_transform(X)

# %%
# Compare the two embeddings
# --------------------------
# ``transform`` returns the mean of each row's posterior q(z | x), so the
# embedding is deterministic.
fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), layout="constrained")
for ax, Z, title in [
    (axes[0], Z_pca, "PCA"),
    (axes[1], Z_vae, "VAETransformer (posterior mean)"),
]:
    points = ax.scatter(Z[:, 0], Z[:, 1], c=y, cmap="tab10", s=8, alpha=0.8)
    ax.set_title(title)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
fig.colorbar(points, ax=axes, ticks=range(10), label="digit")
plt.show()

# %%
# How well do the two dimensions separate the digits?
# ---------------------------------------------------
# A simple way to put a number on the pictures: the cross-validated accuracy of
# a nearest-neighbour classifier that sees only the two coordinates. (The
# embeddings were fitted on all rows without labels, so this measures how the
# classes are laid out, not generalisation.)
for name, Z in [("PCA", Z_pca), ("VAE", Z_vae)]:
    accuracy = cross_val_score(KNeighborsClassifier(), Z, y, cv=5).mean()
    print(f"{name}: 5-NN accuracy in 2-D = {accuracy:.2f}")

# %%
# The VAE's prior is a standard normal, so its latent codes gather around the
# origin with roughly unit spread. Several digits that overlap in the PCA
# plane form clusters of their own, although two dimensions cannot keep all
# ten apart. A 2-D latent space is for looking at; models meant to
# reconstruct or to score the data need more components (see
# :ref:`sphx_glr_auto_examples_plot_model_selection.py`).
