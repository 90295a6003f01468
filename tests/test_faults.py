"""Faults around training and files: a callback's or the disk's error during
fit, atomic saving, damaged files refused whole, memory errors that say what."""

import errno
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import skvae
from skvae import ModelFileError, VAETransformer

X = np.random.RandomState(0).normal(size=(60, 3))


def small(**params):
    return VAETransformer(hidden_layer_sizes=(8,), batch_size=32, random_state=0, **params)


def quiet_fit(vae, data=X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return vae.fit(data)


class DiskFull:
    """A checkpointing callback whose disk is full from epoch ``at`` on."""

    def __init__(self, at, task="epoch"):
        self.at, self.task = at, task

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        if self.task == "fit" and context.task_name == "fit":
            raise OSError(errno.ENOSPC, "No space left on device")

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        if context.task_name == "epoch" and fitted_estimator.n_iter_ == self.at:
            raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_failing_callback_keeps_the_epochs_trained(early_stopping):
    """The issue's case: a first fit whose checkpoint hits a full disk keeps the
    weights of the epochs it trained, fitted, and the error says so."""
    vae = small(max_iter=20, early_stopping=early_stopping).set_callbacks(DiskFull(at=7))
    with pytest.raises(OSError, match="No space left") as caught:
        vae.fit(X)
    reference = quiet_fit(small(max_iter=7, early_stopping=early_stopping))
    assert vae.n_iter_ == 7 and vae.loss_curve_ == reference.loss_curve_
    np.testing.assert_array_equal(vae.transform(X), reference.transform(X))
    np.testing.assert_array_equal(vae.active_components_, reference.active_components_)
    assert vae.validation_scores_ == reference.validation_scores_
    assert "keeps the weights it reached (n_iter_=7" in caught.value.__notes__[0]
    again = pickle.loads(pickle.dumps(vae.set_callbacks()))
    np.testing.assert_array_equal(again.transform(X), vae.transform(X))


def test_an_error_before_training_leaves_the_estimator_unfitted():
    vae = small(max_iter=5).set_callbacks(DiskFull(at=None, task="fit"))
    with pytest.raises(OSError):
        vae.fit(X)
    assert not hasattr(vae, "module_") and not hasattr(vae, "n_iter_")


# ---------------------------------------------------------------- saving


@pytest.fixture(scope="module")
def fitted():
    return quiet_fit(small(max_iter=3))


@pytest.mark.parametrize("format", ["pickle", "joblib", "skops"])
def test_save_and_load_round_trip(fitted, tmp_path, format):
    if format == "skops":
        pytest.importorskip("skops.io")
    path = skvae.save(fitted, tmp_path / f"vae.{format}", format=format)
    loaded = skvae.load(path, format=format)
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    assert os.listdir(tmp_path) == [f"vae.{format}"]


@pytest.mark.parametrize("format", ["pickle", "joblib"])
def test_a_full_disk_leaves_the_saved_model_intact(fitted, tmp_path, monkeypatch, format):
    path = tmp_path / "vae.pkl"
    skvae.save(fitted, path, format=format)
    os.chmod(path, 0o640)
    before = path.read_bytes()
    real_open = os.fdopen

    class FullDisk:
        """A file on a disk that takes 100 bytes more."""

        def __init__(self, file):
            self.file, self.room = file, 100

        def write(self, data):
            if len(data) > self.room:
                self.file.write(bytes(data[: self.room]))
                raise OSError(errno.ENOSPC, "No space left on device")
            self.room -= len(data)
            return self.file.write(data)

        def __getattr__(self, name):
            return getattr(self.file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

    monkeypatch.setattr(os, "fdopen", lambda *args: FullDisk(real_open(*args)))
    refit = quiet_fit(small(max_iter=4))
    with pytest.raises(OSError, match="No space left"):
        skvae.save(refit, path, format=format)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["vae.pkl"]
    assert skvae.load(path, format=format).n_iter_ == 3
    skvae.save(refit, path, format=format)  # the new file keeps the old one's permissions
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert skvae.load(path, format=format).n_iter_ == 4


def test_save_refuses_an_unknown_format(fitted, tmp_path):
    with pytest.raises(ValueError, match="format must be one of"):
        skvae.save(fitted, tmp_path / "vae", format="npz")


# ---------------------------------------------------------- damaged files


def test_a_changed_hyperparameter_is_refused(fitted):
    """The checksum covers the whole state, not the weights only."""
    for name, value in [("beta", 1.5e-05), ("n_features_in_", 4), ("_frame_output", True),
                        ("loss_curve_", fitted.loss_curve_[:-1] + [0.0])]:
        state = fitted.__getstate__()
        state[name] = value
        with pytest.raises(ModelFileError, match="its state does not match its checksum"):
            VAETransformer.__new__(VAETransformer).__setstate__(state)


def test_a_state_without_its_format_key_is_refused_at_load(fitted):
    state = fitted.__getstate__()
    del state["_skvae_format"]
    with pytest.raises(ModelFileError, match="no format version"):
        VAETransformer.__new__(VAETransformer).__setstate__(state)


def test_a_fitted_state_missing_a_key_is_refused(fitted):
    from skvae._persistence import _checksum

    state = fitted.__getstate__()
    del state["_structure"], state["_skvae_checksum"]
    state["_skvae_checksum"] = _checksum(state)
    with pytest.raises(ModelFileError, match=r"lacks \['_structure'\]"):
        VAETransformer.__new__(VAETransformer).__setstate__(state)


@pytest.mark.parametrize("change", ["shape", "dtype", "data"])
def test_inconsistent_raw_arrays_are_refused_before_use(fitted, change):
    """A hand-made state whose checksum matches but whose array pieces do not
    fit one another: refused before NumPy makes an array of them."""
    from skvae._persistence import _checksum

    state = fitted.__getstate__()
    array = state["module_"]["weights"]["encoder.0.weight"]
    array.update({"shape": [10**9, 10**9]} if change == "shape" else
                 {"_skvae_array": "|O8"} if change == "dtype" else
                 {"data": array["data"][:-1]})
    del state["_skvae_checksum"]
    state["_skvae_checksum"] = _checksum(state)
    with pytest.raises(ModelFileError, match="cannot be rebuilt.*an array"):
        VAETransformer.__new__(VAETransformer).__setstate__(state)


SWEEP = """
import sys, warnings
import numpy as np, pandas as pd
import skvae
path, step = sys.argv[1], int(sys.argv[2])
frame = pd.read_pickle(sys.argv[3])
original = open(path, "rb").read()
model = skvae.load(path)
reference = (model.transform(frame), model.get_params(), model.feature_names_in_)
counts = {}
for position in range(0, len(original), step):
    damaged = bytearray(original)
    damaged[position] ^= 0x5A
    open(path + ".bad", "wb").write(damaged)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = skvae.load(path + ".bad")
        same = (np.array_equal(loaded.transform(frame), reference[0])
                and loaded.get_params() == reference[1]
                and list(loaded.feature_names_in_) == list(reference[2]))
        outcome = "identical" if same else f"changed at {position}"
    except skvae.ModelFileError:
        outcome = "refused"
    counts[outcome] = counts.get(outcome, 0) + 1
print(sorted(counts))
"""


def test_damaged_bytes_are_refused_never_loaded_changed(tmp_path):
    """Every 23rd byte of a DataFrame-fitted model's pickle, changed: each
    load is refused with ModelFileError or gives the same model, and the
    process survives (it runs in a subprocess, so that a crash fails the test)."""
    import pandas as pd

    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.normal(size=40),
                          "c": pd.Categorical(rng.choice(["a", "b"], 40))})
    model = quiet_fit(VAETransformer(n_components=1, hidden_layer_sizes=(2,), max_iter=2,
                                     random_state=0), frame)
    path = skvae.save(model, tmp_path / "vae.pkl")
    frame.to_pickle(tmp_path / "frame.pkl")
    result = subprocess.run([sys.executable, "-c", SWEEP, path, "23", str(tmp_path / "frame.pkl")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert set(eval(result.stdout)) <= {"identical", "refused"}, result.stdout


def test_damaged_skops_file_is_refused(fitted, tmp_path):
    sio = pytest.importorskip("skops.io")
    data = bytearray(sio.dumps(fitted))
    text = data.find(b'"beta"')  # in skops' schema: the parameter's saved value follows
    assert text > 0
    value = data.find(b"1.0", text)
    data[value] = ord("7")
    (tmp_path / "vae.skops").write_bytes(data)
    with pytest.raises(ModelFileError, match="damaged|cannot be read"):
        skvae.load(tmp_path / "vae.skops", format="skops")


def test_a_file_holding_another_object_is_refused(tmp_path):
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ModelFileError, match="holds a list"):
        skvae.load(tmp_path / "list.pkl")


# ---------------------------------------------------------------- memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is Linux's")
def test_out_of_memory_says_what_was_allocated():
    """With 3 GiB of address space, a network of 10**7 hidden units on 10**4
    columns (37 GiB of weights) cannot be built: a MemoryError that says so."""
    script = textwrap.dedent("""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
        import numpy as np
        from skvae import VAETransformer
        X = np.random.RandomState(0).normal(size=(20, 10**4))
        vae = VAETransformer(hidden_layer_sizes=(10**7,), max_iter=1)
        try:
            vae.fit(X)
        except MemoryError as exc:
            print(exc, "| fitted:", hasattr(vae, "module_"))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert "Not enough memory for the network's weights (10000 columns, hidden layers " \
           "(10000000,)" in result.stdout, result.stdout + result.stderr[-2000:]
    assert "GiB requested" in result.stdout and "fitted: False" in result.stdout


def test_a_pickle_with_a_huge_memo_index_is_refused_before_unpickling(tmp_path):
    """A damaged memo index would make the unpickler allocate gigabytes."""
    (tmp_path / "bad.pkl").write_bytes(b"\x80\x04K\x01r\x01\x65\x68\x51.")
    with pytest.raises(ModelFileError, match="memo index 1365796097 out of range"):
        skvae.load(tmp_path / "bad.pkl")
