"""Fitted models whose outputs are kept, so that a change meant to leave every
number alone (a refactoring) can be checked bit for bit.

``python tests/reference_models.py`` writes ``tests/data/reference_outputs.npz``
from the code as it is; ``tests/test_reference_outputs.py`` compares the code as
it is with that file. Regenerate the file only when a change is meant to move
numbers, and say so in the commit.

The cases cover the paths a fit can take: Gaussian arrays with early stopping and
row weights; a mixed DataFrame (categorical, count, boolean and float columns)
with missing values; counts under the importance-weighted objective with KL
warm-up, an adaptive rate and gradient clipping; images through the conv nets;
``partial_fit`` chunks and a warm start; ``n_components="auto"``; a
``VAEImputer``.
"""

import os
import sys

import numpy as np
import torch

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                    "reference_outputs.npz")


def _gaussian():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(240, 2)) @ rng.normal(size=(2, 6)) + 0.2 * rng.normal(size=(240, 6))
    return X, rng.uniform(0.2, 2.0, size=240)


def _mixed():
    import pandas as pd

    rng = np.random.RandomState(1)
    n = 200
    z = rng.normal(size=n)
    frame = pd.DataFrame({
        "x": z + 0.3 * rng.normal(size=n),
        "y": np.exp(0.5 * z) + 0.1 * rng.normal(size=n),
        "count": rng.poisson(np.exp(1 + 0.5 * z)),
        "colour": pd.Categorical(np.where(z > 0, "red", np.where(z > -1, "green", "blue"))),
        "flag": z + rng.normal(size=n) > 0,
    })
    holes = rng.uniform(size=n) < 0.15
    frame.loc[holes, "x"] = np.nan
    frame.loc[rng.uniform(size=n) < 0.1, "colour"] = np.nan
    return frame


def _counts():
    rng = np.random.RandomState(2)
    rates = np.exp(rng.normal(size=(150, 1)) @ rng.normal(size=(1, 7)) * 0.5 + 1)
    return rng.poisson(rates).astype(float)


def rows(name):
    """The rows case ``name`` is fitted and evaluated on."""
    if name == "mixed":
        return _mixed()
    if name == "counts":
        return _counts()
    if name == "images":
        from sklearn.datasets import load_digits

        return load_digits().data[:160] / 16.0
    return _gaussian()[0]


def cases():
    """``name -> (estimator factory, fit function)``; the fit function takes the
    estimator and returns it fitted, with the rows to evaluate it on."""
    from sklearn.datasets import load_digits

    from skvae import VAETransformer

    small = {"hidden_layer_sizes": (16,), "random_state": 0}

    def gaussian(vae):
        X, w = _gaussian()
        return vae.fit(X, sample_weight=w), X

    def mixed(vae):
        X = _mixed()
        return vae.fit(X), X

    def counts(vae):
        X = _counts()
        return vae.fit(X), X

    def images(vae):
        X = load_digits().data[:160] / 16.0
        return vae.fit(X), X

    def chunks(vae):
        X, _ = _gaussian()
        for part in np.array_split(X, 3):
            vae.partial_fit(part)
        vae.set_params(warm_start=True, max_iter=3).fit(X)
        return vae, X

    def auto(vae):
        X, _ = _gaussian()
        return vae.fit(X), X

    return {
        "gaussian": (lambda: VAETransformer(3, max_iter=12, early_stopping=True,
                                            validation_fraction=0.2, **small), gaussian),
        "mixed": (lambda: VAETransformer(2, max_iter=6, **small), mixed),
        # Recorded before early_stopping="auto", which turns it on for counts:
        # set off, as it was then.
        "counts": (lambda: VAETransformer(2, likelihood="negbinom", max_iter=6,
                                          early_stopping=False,
                                          n_importance_samples=3, kl_warmup_epochs=3,
                                          learning_rate="adaptive", max_grad_norm=5.0,
                                          n_score_samples=4, **small), counts),
        "images": (lambda: VAETransformer(2, architecture="conv", image_shape=(1, 8, 8),
                                          conv_channels=(4, 8), likelihood="bernoulli",
                                          max_iter=3, **small), images),
        "chunks": (lambda: VAETransformer(2, max_iter=2, **small), chunks),
        "auto": (lambda: VAETransformer("auto", max_iter=4, **small), auto),
    }


def outputs():
    """Every case's outputs, as a dict of float64 arrays named ``case/what``."""
    out = {}
    for name, (make, fit) in cases().items():
        vae, X = fit(make())
        drawn = vae.sample(7, random_state=3)
        if hasattr(drawn, "to_numpy"):
            drawn = np.column_stack([np.asarray(drawn[c].cat.codes if hasattr(drawn[c], "cat")
                                                else drawn[c], dtype=float)
                                     for c in drawn.columns])
        Z = vae.transform(X)
        decoded = vae.inverse_transform(Z[:5])
        if hasattr(decoded, "to_numpy"):
            decoded = decoded.select_dtypes("number").to_numpy(dtype=float)
        out.update({
            f"{name}/transform": Z,
            f"{name}/score_samples": vae.score_samples(X),
            f"{name}/sample": np.asarray(drawn, dtype=float),
            f"{name}/inverse_transform": np.asarray(decoded, dtype=float),
            f"{name}/loss_curve": np.asarray(vae.loss_curve_),
            f"{name}/kl_per_component": vae.kl_per_component_,
        })
    out["imputer/transform"] = _imputed()
    return out


def _imputed():
    """A VAEImputer's filled numeric columns of the mixed table."""
    from skvae import VAEImputer, VAETransformer

    X = _mixed()
    imputer = VAEImputer(VAETransformer(2, hidden_layer_sizes=(16,), max_iter=4,
                                        random_state=0), random_state=0)
    filled = imputer.fit(X).transform(X)
    return filled.select_dtypes("number").to_numpy(dtype=float)


def machine():
    """What bit-for-bit equality depends on besides the code."""
    return f"torch {torch.__version__}, numpy {np.__version__}, " \
           f"cpu {torch.backends.cpu.get_cpu_capability()}"


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.makedirs(os.path.dirname(PATH), exist_ok=True)
    np.savez(PATH, __machine__=np.array(machine()), **outputs())
    print(f"wrote {PATH} ({machine()})")
