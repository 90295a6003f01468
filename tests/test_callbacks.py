"""Per-epoch callbacks (skvae._callbacks): scikit-learn's callback API, and the
stand-in used where scikit-learn has none."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skvae import VAETransformer
from skvae._callbacks import MinimalCallbackSupportMixin

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

X = np.random.RandomState(0).normal(size=(120, 4)) @ np.random.RandomState(1).normal(size=(4, 4))


class Recorder:
    """Records every hook call; stops training after ``stop_after`` epochs."""

    def __init__(self, stop_after=None):
        self.stop_after = stop_after
        self.calls, self.epochs = [], []

    def setup(self, estimator, context):
        self.calls.append("setup")

    def teardown(self, estimator, context):
        self.calls.append("teardown")

    def on_fit_task_begin(self, estimator, context, *, X=None):
        self.calls.append(f"begin {context.task_name}")

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, fitted_estimator=None):
        self.calls.append(f"end {context.task_name}")
        if context.task_name != "epoch":
            return False
        self.epochs.append(fitted_estimator)
        return self.stop_after is not None and fitted_estimator.n_iter_ >= self.stop_after


class LegacyVAE(MinimalCallbackSupportMixin, VAETransformer):
    """The estimator as it is where scikit-learn has no sklearn.callback."""


@pytest.fixture(params=[VAETransformer, LegacyVAE], ids=["sklearn.callback", "stand-in"])
def estimator_class(request):
    return request.param


def test_hooks_are_called_per_fit_and_per_epoch(estimator_class):
    recorder = Recorder()
    vae = estimator_class(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    vae.set_callbacks(recorder).fit(X)
    epochs = ["begin epoch", "end epoch"] * 3
    assert recorder.calls == ["setup", "begin fit", *epochs, "end fit", "teardown"]
    # Each epoch's fitted_estimator carries the curves so far.
    assert [e.n_iter_ for e in recorder.epochs] == [1, 2, 3]
    assert recorder.epochs[-1].loss_curve_ == vae.loss_curve_
    assert recorder.epochs[0].loss_curve_ == vae.loss_curve_[:1]


def test_a_callback_stops_training_without_a_convergence_warning(estimator_class):
    vae = estimator_class(hidden_layer_sizes=(8,), max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        vae.set_callbacks(Recorder(stop_after=2)).fit(X)
    assert vae.n_iter_ == 2 and len(vae.loss_curve_) == 2


def test_fitted_estimator_is_a_checkpoint_of_its_epoch(make_vae):
    recorder = Recorder()
    vae = make_vae(hidden_layer_sizes=(8,), max_iter=4, batch_size=32)
    vae.set_callbacks(recorder).fit(X)
    checkpoint = pickle.loads(pickle.dumps(recorder.epochs[1]))  # after epoch 2
    # The same seed trained for two epochs gives the same model.
    two_epochs = make_vae(hidden_layer_sizes=(8,), max_iter=2, batch_size=32).fit(X)
    np.testing.assert_array_equal(checkpoint.transform(X), two_epochs.transform(X))
    assert checkpoint.score(X) == two_epochs.score(X)
    assert not np.array_equal(checkpoint.transform(X), vae.transform(X))


def test_a_checkpoint_trains_on_by_itself(make_vae):
    recorder = Recorder()
    vae = make_vae(max_iter=4, batch_size=32, hidden_layer_sizes=(8,)).set_callbacks(recorder)
    vae.fit(X)
    checkpoint = pickle.loads(pickle.dumps(recorder.epochs[1]))
    assert not hasattr(checkpoint, "_callback_fit_ctx")
    before = checkpoint.transform(X)
    checkpoint.set_callbacks().set_params(warm_start=True, max_iter=2).fit(X)
    assert checkpoint.n_iter_ == 4 and len(checkpoint.loss_curve_) == 4
    assert not np.array_equal(checkpoint.transform(X), before)  # its own weights moved
    # ... and the estimator it was taken from did not change.
    np.testing.assert_array_equal(recorder.epochs[-1].transform(X), vae.transform(X))


def test_early_stopping_curves_reach_the_callbacks(make_vae):
    recorder = Recorder()
    vae = make_vae(hidden_layer_sizes=(8,), max_iter=3, batch_size=32, early_stopping=True)
    vae.set_callbacks(recorder).fit(X)
    assert recorder.epochs[-1].validation_scores_ == vae.validation_scores_
    assert len(recorder.epochs[0].validation_scores_) == 1


def test_partial_fit_is_one_epoch_task_per_call(make_vae):
    recorder = Recorder()
    vae = make_vae(hidden_layer_sizes=(8,), max_iter=4, batch_size=32).set_callbacks(recorder)
    for chunk in np.array_split(X, 3):
        vae.partial_fit(chunk)
    assert recorder.calls.count("end epoch") == 3
    assert recorder.calls.count("setup") == recorder.calls.count("teardown") == 3


def test_callbacks_are_torn_down_when_fit_fails(make_vae):
    recorder = Recorder()
    with pytest.raises(ValueError):
        vae = make_vae(hidden_layer_sizes=(8,), max_iter=4, batch_size=32, likelihood="poisson")
        vae.set_callbacks(recorder).fit(X)  # negative values
    assert recorder.calls.count("setup") == recorder.calls.count("teardown")


def test_scikit_learn_scoring_monitor_logs_each_epoch(make_vae):
    callback = pytest.importorskip("sklearn.callback")
    monitor = callback.ScoringMonitor(scoring=lambda est, X, y: {"ll": est.score(X)})
    y = np.zeros(len(X))
    vae = make_vae(hidden_layer_sizes=(8,), max_iter=3, batch_size=32)
    vae.set_callbacks(monitor).fit(X, y)
    log = monitor.get_logs().data_as_pandas
    epochs = log[log["task_name"] == "epoch"]
    assert len(epochs) == 3
    assert epochs["ll"].iloc[-1] == pytest.approx(vae.score(X))


def test_stand_in_rejects_non_callbacks():
    with pytest.raises(TypeError, match="callbacks must be instances"):
        LegacyVAE().set_callbacks(Recorder)  # the class, not an instance


def test_stand_in_tears_down_however_fit_ends():
    from skvae._callbacks import minimal_with_callbacks

    recorder = Recorder()

    class Legacy(MinimalCallbackSupportMixin):
        @minimal_with_callbacks
        def fit(self):
            self._init_callback_context()
            raise RuntimeError("fit failed")

    estimator = Legacy().set_callbacks(recorder)
    with pytest.raises(RuntimeError, match="fit failed"):
        estimator.fit()
    assert recorder.calls == ["setup", "teardown"]
    assert not hasattr(estimator, "_callback_fit_ctx")
