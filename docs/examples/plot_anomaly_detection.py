"""
========================================
Anomaly detection with ``score_samples``
========================================

``score_samples`` gives a lower bound on the log-likelihood log p(x) of each
row under the fitted model. Rows the model finds unlikely are candidates for
anomalies, so the negated score is an anomaly score that needs no labels to
train.

A Gaussian VAE is fitted to clean handwritten digits. It is then asked to
tell held-out clean digits from two kinds of corrupted ones:

* **noisy** digits, where a fifth of the pixels get random noise;
* **chimeras**, the top half of one digit glued onto the bottom half of
  another: every half is a plausible piece of a digit, but the whole is not.

The same is done with :class:`~sklearn.decomposition.PCA`, whose
``score_samples`` is the log-likelihood under probabilistic PCA, with the same
number of components. The ROC AUC measures how well each score ranks the
anomalies below the clean digits (1 is perfect, 0.5 is chance).
"""

# %%
# Clean training digits and corrupted test digits
# -----------------------------------------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import RocCurveDisplay, roc_auc_score
from sklearn.model_selection import train_test_split

from skvae import VAETransformer

X, y = load_digits(return_X_y=True)  # grey levels 0 to 16
X_train, X_test = train_test_split(X, test_size=0.3, stratify=y, random_state=0)

rng = np.random.RandomState(0)
n_test = len(X_test)
hit = rng.rand(n_test, 64) < 0.2
noisy = np.clip(X_test + hit * rng.uniform(-5, 5, size=(n_test, 64)), 0, 16)
images = X_test.reshape(-1, 8, 8)
other = images[rng.permutation(n_test)]
chimeras = np.concatenate([images[:, :4], other[:, 4:]], axis=1).reshape(n_test, 64)
test_sets = {"clean": X_test, "noisy": noisy, "chimera": chimeras}

fig, axes = plt.subplots(3, 8, figsize=(8, 3.4), layout="constrained")
for row, (name, data) in zip(axes, test_sets.items(), strict=True):
    for ax, image in zip(row, data[: len(row)], strict=True):
        ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=16)
        ax.set_xticks([])
        ax.set_yticks([])
    row[0].set_ylabel(name, rotation=0, ha="right", va="center")
plt.show()

# %%
# Fit on clean digits only
# ------------------------
# The default Gaussian likelihood learns a variance per pixel. Pixels that are
# blank in every training digit get a variance at the floor set by
# ``min_variance``, so ink where there should be none costs a lot of
# log-likelihood.
vae = VAETransformer(
    n_components=8,
    hidden_layer_sizes=(128, 64),
    max_iter=100,
    random_state=0,
)
with warnings.catch_warnings():
    # A short training budget keeps the example fast.
    warnings.simplefilter("ignore", ConvergenceWarning)
    vae.fit(X_train)
pca = PCA(n_components=8, random_state=0).fit(X_train)

# %%
# Score the test rows
# -------------------
# Higher ``score_samples`` means more typical, so the anomaly score is its
# negation. The draws behind the VAE's bound are fixed when the model is
# fitted, so a row gets the same score every time, alone or in a batch.
scores = {
    name: {kind: model.score_samples(data) for kind, data in test_sets.items()}
    for name, model in [("VAE", vae), ("PCA", pca)]
}

fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), layout="constrained")
bins = np.linspace(-400, 0, 41)
for kind, color in [("clean", "C2"), ("noisy", "C3"), ("chimera", "C1")]:
    clipped = np.clip(scores["VAE"][kind], bins[0], None)
    axes[0].hist(clipped, bins=bins, alpha=0.5, color=color, label=kind)
axes[0].set_xlabel("VAE score_samples (nats; clipped at -400)")
axes[0].set_ylabel("number of test images")
axes[0].legend()

for ax, kind in zip(axes[1:], ["noisy", "chimera"], strict=True):
    is_anomaly = np.r_[np.zeros(n_test), np.ones(n_test)]
    for name in ["VAE", "PCA"]:
        anomaly_score = -np.r_[scores[name]["clean"], scores[name][kind]]
        auc = roc_auc_score(is_anomaly, anomaly_score)
        RocCurveDisplay.from_predictions(
            is_anomaly,
            anomaly_score,
            ax=ax,
            name=name,
            plot_chance_level=name == "PCA",
        )
        print(f"{kind:>8}: {name} ROC AUC = {auc:.3f}")
    ax.set_title(f"clean vs {kind}")
plt.show()

# %%
# The VAE tells the noisy digits from clean ones far better than PCA, which
# does little better than chance on them. Probabilistic PCA spreads a single
# noise variance over all directions outside its subspace, so a little ink
# scattered anywhere costs little; the VAE's per-pixel variances know which
# pixels are never inked. The chimeras are harder for both, since every half
# is a plausible piece of a digit, but the nonlinear decoder still recognises
# more of them as wrong wholes.
#
# ``score_samples`` is a lower bound on log p(x); more importance samples,
# ``vae.score_samples(X, n_importance_samples=50)``, tighten it at a
# proportional cost.
