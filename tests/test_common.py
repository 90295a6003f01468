"""scikit-learn's own estimator checks, on a fast instance."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skvae import VAEImputer, VAETransformer


def fast_vae(**params):
    defaults = dict(hidden_layer_sizes=(16,), max_iter=2, batch_size=64, random_state=0)
    return VAETransformer(**{**defaults, **params})


def expected_failures(estimator):
    # Training is stochastic (minibatch order, reparameterisation noise): a row
    # repeated twice and a row of weight 2 get different batches and draws, so
    # the fitted weights differ. The weighted objective itself equals the
    # duplicated rows' (tests/test_sample_weight.py).
    reason = "stochastic training: equal objectives, different minibatches"
    failures = {"check_sample_weight_equivalence_on_dense_data": reason,
                "check_sample_weight_equivalence_on_sparse_data": reason}
    if isinstance(estimator, VAEImputer):
        return {}
    if estimator.n_components == "auto":
        # Its partial_fit on a fresh estimator: "auto" needs fit, which raises
        # a ValueError that says so.
        failures["check_n_features_in_after_fitting"] = 'partial_fit with n_components="auto"'
    return failures


@parametrize_with_checks(
    [
        fast_vae(),
        fast_vae(n_components=3, early_stopping=True),
        fast_vae(n_components="auto"),
        VAEImputer(fast_vae(), random_state=0),
        VAEImputer(fast_vae(), add_indicator=True, keep_empty_features=True,
                   random_state=0),
    ],
    expected_failed_checks=expected_failures,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
