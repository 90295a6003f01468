"""
================================================
Choosing ``n_components`` by held-out likelihood
================================================

Like :class:`~sklearn.decomposition.PCA` and
:class:`~sklearn.decomposition.FactorAnalysis`, :class:`~skvae.VAETransformer`
has a ``score`` method: the mean log-likelihood of the rows, for the VAE a
lower bound on it. So :class:`~sklearn.model_selection.GridSearchCV` can choose
the number of latent dimensions without labels and without a ``scoring``
argument, by the likelihood of held-out rows. This follows scikit-learn's
example "Model selection with Probabilistic PCA and Factor Analysis (FA)".

The data here lie near a *curved* two-dimensional surface in 12 dimensions,
with a different noise level in each feature. The linear models need many
components to follow the curve; the VAE's decoder can bend.
"""

# %%
# Data on a curved 2-D surface
# ----------------------------
# Two latent coordinates are pushed through a small random network with a
# ``tanh`` nonlinearity, then every feature gets Gaussian noise of its own
# scale.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_score

from skvae import VAETransformer

rng = np.random.RandomState(0)
n_samples, n_features, true_dim = 300, 12, 2
latent = rng.randn(n_samples, true_dim)
hidden = np.tanh(latent @ (1.5 * rng.randn(true_dim, 16)))
X = hidden @ (rng.randn(16, n_features) / 4)
X += rng.randn(n_samples, n_features) * rng.uniform(0.05, 0.2, n_features)

# %%
# Cross-validated scores
# ----------------------
# ``GridSearchCV`` with no ``scoring`` calls each estimator's own ``score`` on
# the held-out fold. For PCA and factor analysis that is the exact Gaussian
# log-likelihood; for the VAE it is a lower bound on the log-likelihood (an
# importance-weighted ELBO), in the same units: nats per row.
n_components = [1, 2, 3, 4]

pca_scores = [cross_val_score(PCA(k), X, cv=3).mean() for k in n_components]
fa_scores = [
    cross_val_score(FactorAnalysis(k, random_state=0), X, cv=3).mean()
    for k in n_components
]

vae = VAETransformer(
    hidden_layer_sizes=(64, 64),
    learning_rate_init=5e-3,
    batch_size=50,
    max_iter=60,
    random_state=0,
)
# Only the scores are needed here, so skip refitting the best model on all rows.
search = GridSearchCV(vae, {"n_components": n_components}, cv=3, refit=False)
# A short training budget keeps the example fast; some fits would warn that
# the loss was still improving.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X)
vae_scores = search.cv_results_["mean_test_score"]
vae_std = search.cv_results_["std_test_score"]

best = {
    "PCA": n_components[int(np.argmax(pca_scores))],
    "FactorAnalysis": n_components[int(np.argmax(fa_scores))],
    "VAETransformer": search.best_params_["n_components"],
}
for name, k in best.items():
    print(f"{name:>15}: best n_components = {k}")

# %%
# Plot the scores
# ---------------
fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
ax.plot(n_components, pca_scores, "o-", label="PCA")
ax.plot(n_components, fa_scores, "s-", label="FactorAnalysis")
ax.errorbar(
    n_components,
    vae_scores,
    yerr=vae_std,
    fmt="D-",
    capsize=3,
    label="VAETransformer (lower bound)",
)
ax.axvline(true_dim, color="gray", linestyle=":", label="true dimension")
ax.set_xticks(n_components)
ax.set_xlabel("n_components")
ax.set_ylabel("held-out log-likelihood per row (nats)")
ax.set_title("3-fold cross-validated score")
ax.legend(loc="lower right")
plt.show()

# %%
# Reading the curves
# ------------------
# * The linear models keep improving as components are added: each one
#   covers a little more of the curved surface, which a flat subspace can only
#   approximate.
# * The VAE jumps at two components, the true dimension, and beats the best
#   linear model there, although its score is only a lower bound.
# * Beyond the true dimension the VAE's score stays roughly flat rather than
#   dropping: the KL term pushes latent dimensions the data do not need back to
#   the prior, where they cost almost nothing. When several values of
#   ``n_components`` are within the error bars, prefer the smallest.
#
# The error bars are the standard deviation over the three folds. The VAE's
# score is a Monte Carlo estimate whose random draws are fixed when the model
# is fitted, so it is deterministic, but it carries some noise of its own: treat
# small differences between neighbouring values with caution.
