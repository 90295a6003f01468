"""
=====================================
How many latent dimensions are used?
=====================================

PCA reports how much variance each component explains
(``explained_variance_ratio_``). A VAE reports how much each latent dimension
is *used*: ``kl_per_component_`` is the mean over the training rows of the KL
divergence between a row's posterior in that dimension and the prior, in nats.
A dimension the data do not need is pushed back to the prior and its KL falls
towards zero; ``active_components_`` marks the dimensions above 0.1 nats.

This example fits a VAE with more dimensions than the 8x8 digits need, looks
at the KL of each dimension next to PCA's explained variance, and lets
``n_components="auto"`` choose the size: it fits a model with room to spare,
counts its active dimensions and fits the final model with that many.
"""

# %%
# A VAE with room to spare
# ------------------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skvae import VAETransformer

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test = train_test_split(X, test_size=0.25, random_state=0)

# A short, fast training: a higher learning rate than the default and at most
# 100 epochs. The estimator would warn when the loss is still creeping down.
settings = dict(learning_rate_init=5e-3, max_iter=100, random_state=0)


def fit(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X_train)


wide = fit(VAETransformer(n_components=32, **settings))
kl = wide.kl_per_component_
print(f"active dimensions: {wide.active_components_.sum()} of {kl.size}")
print(f"KL term of the ELBO: {kl.sum():.1f} nats per image")

# %%
# The KL of each dimension, sorted, next to PCA's explained variance. Unlike
# PCA's components, the VAE's dimensions come in no particular order, so they
# are sorted here. The VAE's curve falls off a cliff: past the dimensions the
# model uses, the KL is near zero, where PCA's explained variance decreases
# smoothly and leaves the cut to the user.
order = np.argsort(kl)[::-1]
pca = PCA(n_components=32).fit(X_train)

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
colours = np.where(wide.active_components_[order], "tab:blue", "tab:grey")
left.bar(np.arange(1, 33), kl[order], color=colours)
left.axhline(0.1, color="tab:red", linestyle="--", linewidth=1, label="0.1 nats: active")
left.set_xlabel("latent dimension (sorted)")
left.set_ylabel("mean KL to the prior (nats)")
left.set_title("VAETransformer: kl_per_component_")
left.legend()
right.bar(np.arange(1, 33), pca.explained_variance_ratio_, color="tab:green")
right.set_xlabel("principal component")
right.set_ylabel("share of the variance")
right.set_title("PCA: explained_variance_ratio_")
plt.show()

# %%
# ``n_components="auto"``
# -----------------------
# With ``"auto"`` the estimator does the same by itself: it fits
# ``min(n_features, 64)`` dimensions, counts the active ones and refits with
# that many. The chosen size is ``n_components_``, and ``transform`` returns
# that many columns.
auto = fit(VAETransformer(n_components="auto", **settings))
print(f"n_components_ = {auto.n_components_}; transform gives {auto.transform(X_test).shape}")

# %%
# The held-out score against the size
# -----------------------------------
# The held-out bound on log p(x) of fixed sizes rises and then levels off:
# past the dimensions the data support, extra dimensions are pruned and cost
# almost nothing. The size ``"auto"`` chooses sits where the curve flattens.
sizes = [2, 8, 16, 32]
scores = [fit(VAETransformer(n_components=k, **settings)).score(X_test) for k in sizes[:-1]]
scores.append(wide.score(X_test))

fig, ax = plt.subplots(figsize=(5.5, 3.6), layout="constrained")
ax.plot(sizes, scores, "o-", label="fixed n_components")
ax.plot([auto.n_components_], [auto.score(X_test)], "r*", markersize=14,
        label=f'"auto" ({auto.n_components_} dimensions)')
ax.set_xscale("log", base=2)
ax.set_xticks(sizes, [str(k) for k in sizes])
ax.set_xlabel("n_components")
ax.set_ylabel("held-out score (nats per image)")
ax.legend()
plt.show()
