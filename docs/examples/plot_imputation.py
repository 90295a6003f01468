"""
=====================================================
Imputing missing values: VAEImputer and its rivals
=====================================================

:class:`skvae.VAEImputer` fits a :class:`~skvae.VAETransformer` on incomplete
data and fills each missing entry with its conditional mean given the row's
observed entries (see :ref:`missing_values`). This example hides entries of a
complete data set completely at random, at several rates, fills them in with
:class:`~skvae.VAEImputer` and with three of scikit-learn's imputers, and
measures how far each lands from the values that were hidden. A last section
draws imputations instead, and checks how honest their spread is.
"""

# %%
# Hiding entries at random
# ------------------------
# The breast cancer data set: 569 tumours, 30 measurements each (sizes,
# textures and shapes of cell nuclei), many of them strongly correlated. The
# columns are standardised on the complete data, so that errors are in
# standard deviations, and filling in a column's mean scores an error of
# about 1.
#
# Entries are hidden completely at random (MCAR): each entry independently,
# with probability 10%, 30% or 50%. The holes are nested, the 10% ones being
# part of the 30% ones and so on, so that the rates differ only in how much is
# hidden.
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.preprocessing import StandardScaler

from skvae import VAEImputer, VAETransformer

X = StandardScaler().fit_transform(load_breast_cancer().data)
rng = np.random.default_rng(0)
draw = rng.random(X.shape)
rates = [0.1, 0.3, 0.5]
print(f"{X.shape[0]} rows, {X.shape[1]} columns")
for rate in rates:
    holes = draw < rate
    print(f"{rate:.0%} hidden: {holes.mean():.1%} of the entries, "
          f"{holes.any(axis=1).mean():.0%} of the rows incomplete")

# %%
# Four imputers
# -------------
# * :class:`~sklearn.impute.SimpleImputer` fills in each column's mean: the
#   baseline that knows nothing about the relations between columns;
# * :class:`~sklearn.impute.KNNImputer` averages the five most similar rows;
# * :class:`~sklearn.impute.IterativeImputer` regresses each column on the
#   others (Bayesian ridge regression, linear), round after round;
# * :class:`~skvae.VAEImputer` with a small model: ten latent components and
#   200 epochs, the other settings at their defaults.
#
# Each is fitted on the incomplete data and imputes them; the error is the
# root mean squared difference between the imputed and the hidden values.


def imputers():
    return {
        "mean": SimpleImputer(),
        "k nearest neighbours": KNNImputer(),
        "iterative (linear)": IterativeImputer(random_state=0),
        "VAEImputer": VAEImputer(
            VAETransformer(n_components=10, max_iter=200), random_state=0
        ),
    }


errors = {name: [] for name in imputers()}
seconds = {name: 0.0 for name in imputers()}
for rate in rates:
    holes = draw < rate
    X_missing = np.where(holes, np.nan, X)
    for name, imputer in imputers().items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            # IterativeImputer's rounds and the VAE's epochs are capped.
            warnings.simplefilter("ignore", ConvergenceWarning)
            X_filled = imputer.fit_transform(X_missing)
        seconds[name] += time.perf_counter() - start
        errors[name].append(np.sqrt(np.mean((X_filled[holes] - X[holes]) ** 2)))

print("RMSE of the imputed entries (standard deviations)")
print(f"{'hidden':>22}" + "".join(f"{rate:>8.0%}" for rate in rates) + f"{'time':>9}")
for name, values in errors.items():
    print(f"{name:>22}" + "".join(f"{value:>8.3f}" for value in values)
          + f"{seconds[name]:>8.1f}s")

# %%
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
for (name, values), marker in zip(errors.items(), "osD^"):
    ax.plot([100 * rate for rate in rates], values, marker=marker, label=name)
ax.set_xlabel("entries hidden (%)")
ax.set_ylabel("RMSE of the imputed entries (std. dev.)")
ax.set_xticks([100 * rate for rate in rates])
ax.set_ylim(0, None)
ax.set_title("Breast cancer data, entries hidden at random")
ax.legend()
plt.show()

# %%
# Every imputer that uses the other columns does far better than the column
# means, and the order among them depends on how much is missing. With 10% and
# 30% of the entries hidden, the linear iterative imputer is the most
# accurate: many of these measurements are close to linear functions of each
# other (radius, perimeter and area of a nucleus, say), a linear regression on
# the other columns is hard to beat, and with most of a row observed it has
# plenty to regress on. The VAE comes second, well ahead of the nearest
# neighbours. With half the entries hidden the iterative imputer's error grows
# the most; the VAE, which fits one low-dimensional model to all the observed
# entries of a row at once, loses less, and is the most accurate of the four
# there, by a small margin.
#
# These are the results of one data set, one draw of holes and one setting of
# each imputer, none of them tuned. Other settings of the VAE tried while
# writing this example (five components; 100 epochs; a learning rate of
# 0.003) gave errors between 0.47 and 0.54 at 10% hidden, 0.49 and 0.53 at
# 30%, and 0.54 and 0.56 at 50%: the same picture, with five components a
# little worse. On data with nonlinear relations between columns, or with
# mixed column types (which :class:`~skvae.VAEImputer` takes as a DataFrame),
# the ranking can differ; the way to choose is this experiment on your own
# data: hide some observed entries, impute them, and compare.

# %%
# Draws instead of means
# ----------------------
# The conditional mean is the best single guess in squared error, but it says
# nothing about how uncertain the guess is. With ``sample_posterior=True`` each
# missing entry gets a draw from its conditional distribution under the model
# instead, and ``transform`` with different ``random_state`` gives different
# draws: *multiple imputations*. Here, with 30% of the entries hidden, 20 of
# them.
holes = draw < 0.3
X_missing = np.where(holes, np.nan, X)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    sampler = VAEImputer(
        VAETransformer(n_components=10, max_iter=200), sample_posterior=True,
        random_state=0,
    ).fit(X_missing)
draws = np.stack([sampler.transform(X_missing, random_state=m) for m in range(20)])

one_draw = np.sqrt(np.mean((draws[0][holes] - X[holes]) ** 2))
mean_of_draws = np.sqrt(np.mean((draws.mean(axis=0)[holes] - X[holes]) ** 2))
low, high = np.percentile(draws, [5, 95], axis=0)
inside = (low <= X) & (X <= high)
print(f"RMSE of one draw:                 {one_draw:.3f}")
print(f"RMSE of the mean of 20 draws:     {mean_of_draws:.3f}")
print(f"hidden values inside the draws' 5-95% range: {inside[holes].mean():.0%}")

# %%
# A single draw is further from the truth than the mean: it adds the model's
# idea of the noise around the conditional mean, which the average of the
# draws takes away again. The spread of the draws is close to honest: the
# range between their 5th and 95th percentiles holds most of the hidden
# values, a little fewer than the nominal 90% (and fewer in some columns than
# in others, as printed below), as is to be expected of draws from one fitted
# model, which leave out the uncertainty in the model's own weights.
#
# The figure shows the draws for two columns against the hidden values.
# *Mean radius* is all but determined by the other size measurements of the
# row (perimeter, area, their worst values), so its draws are tight and close
# to the hidden values; *mean texture* is much less predictable from the rest
# of the row, and its draws spread much wider, as do its imputations' errors.
feature_names = load_breast_cancer().feature_names
coverage = [inside[holes[:, j], j].mean() for j in range(X.shape[1])]
print(f"per column: from {min(coverage):.0%} to {max(coverage):.0%} inside")

# sphinx_gallery_thumbnail_number = 1
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained", sharey=True)
for ax, column in zip(axes, [0, 1]):
    rows = np.flatnonzero(holes[:, column])[:40]
    order = rows[np.argsort(X[rows, column])]
    positions = np.arange(len(order))
    ax.vlines(positions, low[order, column], high[order, column], color="tab:blue",
              alpha=0.5, linewidth=4, label="5-95% range of 20 draws")
    ax.plot(positions, draws[:, order, column].mean(axis=0), "_", color="tab:blue",
            markersize=10, label="mean of the draws")
    ax.plot(positions, X[order, column], "k.", label="hidden value")
    inside_here = inside[holes[:, column], column].mean()
    ax.set_title(f"{feature_names[column]}: {inside_here:.0%} inside")
    ax.set_xticks([])
    ax.set_xlabel("40 rows with the entry hidden, sorted by its value")
axes[0].set_ylabel("value (std. dev.)")
axes[0].legend(loc="upper left")
plt.show()
