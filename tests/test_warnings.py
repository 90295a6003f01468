"""Warnings point at the user's line, through scikit-learn's wrappers too."""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline

from skvae import VAEImputer, VAETransformer

X = np.random.RandomState(0).normal(size=(60, 4))


def caught(call, category):
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        call()
    return [r for r in records if issubclass(r.category, category)]


def test_convergence_warning_names_the_callers_line():
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    for call in (lambda: vae.fit(X), lambda: vae.fit_transform(X),
                 lambda: make_pipeline(vae).fit(X)):
        records = caught(call, ConvergenceWarning)
        assert records and all(r.filename == __file__ for r in records)


def test_imputer_and_missing_share_warnings_name_the_callers_line():
    holes = X.copy()
    holes[:, 0] = np.nan
    imputer = VAEImputer(VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0))
    records = caught(lambda: imputer.fit(holes), UserWarning)
    assert records and all(r.filename == __file__ for r in records)
    sparse = np.where(np.random.RandomState(1).uniform(size=X.shape) < 0.97, np.nan, X)
    sparse[0] = X[0]
    vae = VAETransformer(hidden_layer_sizes=(8,), max_iter=2, random_state=0)
    records = caught(lambda: vae.fit(sparse), UserWarning)
    assert any("missing" in str(r.message) for r in records)
    assert all(r.filename == __file__ for r in records)


def test_html_repr_links_to_the_docs():
    html = VAETransformer()._repr_html_()
    assert "generated/skvae.VAETransformer.html" in html
    assert "generated/skvae.VAEImputer.html" in VAEImputer()._repr_html_()
