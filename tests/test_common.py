"""scikit-learn's own estimator checks, on a fast instance."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skvae import VAETransformer


def fast_vae(**params):
    defaults = dict(hidden_layer_sizes=(16,), max_iter=2, batch_size=64, random_state=0)
    return VAETransformer(**{**defaults, **params})


@parametrize_with_checks([fast_vae(), fast_vae(n_components=3, early_stopping=True)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
