"""
========================================
VAE features for a downstream classifier
========================================

:class:`~skvae.VAETransformer` is a scikit-learn transformer, so it fits in a
:class:`~sklearn.pipeline.Pipeline` like :class:`~sklearn.decomposition.PCA`.
Here it compresses the 64 pixels of the digits into a few latent dimensions
(learned without the labels), and a logistic regression classifies the digits
from those. The accuracy on a held-out test set is compared with the same
pipeline built on PCA, for several numbers of components.
"""

# %%
# The two pipelines
# -----------------
# The Gaussian likelihood standardises the features internally, so the
# :class:`~sklearn.preprocessing.StandardScaler` is not needed for the VAE; it
# is kept so that both pipelines see exactly the same input.
import warnings

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)


def make_pipeline(reducer):
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("reduce", reducer),
            ("classify", LogisticRegression(max_iter=1000)),
        ]
    )


# %%
# Accuracy against the number of components
# -----------------------------------------
# 50 epochs is a short training budget, chosen so that the example runs in
# seconds; the estimator would warn that the loss was still going down.
n_components = [2, 4, 8, 16]
accuracy = {"PCA": [], "VAETransformer": []}
for k in n_components:
    pca_pipe = make_pipeline(PCA(n_components=k, random_state=0))
    vae_pipe = make_pipeline(
        VAETransformer(
            n_components=k,
            hidden_layer_sizes=(128, 64),
            max_iter=50,
            random_state=0,
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae_pipe.fit(X_train, y_train)
    pca_pipe.fit(X_train, y_train)
    accuracy["PCA"].append(pca_pipe.score(X_test, y_test))
    accuracy["VAETransformer"].append(vae_pipe.score(X_test, y_test))
    print(
        f"n_components={k:2d}:  PCA {accuracy['PCA'][-1]:.3f}   "
        f"VAE {accuracy['VAETransformer'][-1]:.3f}"
    )

fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
for (name, values), marker in zip(accuracy.items(), ["o", "D"], strict=True):
    ax.plot(n_components, values, marker=marker, label=name)
ax.set_xscale("log", base=2)
ax.set_xticks(n_components, [str(k) for k in n_components])
ax.set_xlabel("n_components")
ax.set_ylabel("test accuracy")
ax.set_title("StandardScaler -> reducer -> LogisticRegression")
ax.legend()
plt.show()

# %%
# With very few components the VAE's nonlinear encoder keeps more of what
# separates the digits than a linear projection can. With more components PCA
# catches up and, on a data set this small, overtakes the briefly trained VAE:
# a linear classifier on many linear components is already a strong model
# here.
#
# The fitted pipeline behaves like any other. For instance, the VAE step names
# its outputs, so the latent codes of a few test digits can be looked at as a
# DataFrame. (Calling ``set_output(transform="pandas")`` on the pipeline before
# fitting makes every step return DataFrames.)
encoder = vae_pipe[:-1]  # the scaler and the VAE
codes = pd.DataFrame(
    encoder.transform(X_test[:5]), columns=encoder.get_feature_names_out()
)
print(codes.iloc[:, :4].round(2))
