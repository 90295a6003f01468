"""The digits demo (skvae._demo): its figure and helpers."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from skvae import VAETransformer
from skvae._demo import draw_figure, robust_limits

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_robust_limits_ignore_a_few_outlying_codes():
    values = np.concatenate([np.random.RandomState(0).uniform(-1, 1, 500), [80.0, -60.0]])
    low, high = robust_limits(values)
    assert -1.5 < low < -0.9 and 0.9 < high < 1.5
    assert robust_limits(np.zeros(10)) == (-1.0, 1.0)


def test_figure_is_drawn(digits, tmp_path):
    pytest.importorskip("matplotlib")
    X, y = digits
    vae = VAETransformer(hidden_layer_sizes=(16,), max_iter=2, random_state=0).fit(X[:200])
    pca = PCA(n_components=2).fit(X[:200])
    path = tmp_path / "demo.png"
    draw_figure(vae, pca, X[200:300], y[200:300], path)
    assert path.stat().st_size > 0


def test_help_answers_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys, runpy; sys.argv = ['skvae', '--help']\n"
            "try:\n    runpy.run_module('skvae', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "(default: [2, 10])" in out.stdout


@pytest.mark.slow
def test_main_job_reports_progress(tmp_path, capsys):
    from skvae._demo import main

    assert main(["--n-components", "2", "--output", str(tmp_path / "demo.png")]) == 0
    out = capsys.readouterr().out
    assert "fitting VAETransformer with 2 components" in out
    assert "Epoch 1/" in out and "done in" in out
    assert (tmp_path / "demo.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--n-components", "0"], "0 is not between 1 and 64"),
    (["--n-components", "2", "65"], "65 is not between 1 and 64"),
    (["--output", "no_such_folder/demo.png"], "does not exist"),
    (["--threads", "-1"], "--threads must be 0"),
])
def test_bad_arguments_stop_before_training(args, message, capsys, monkeypatch, tmp_path):
    from skvae import _demo

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_demo, "_run", lambda args: pytest.fail("training started"))
    with pytest.raises(SystemExit) as stop:
        _demo.main(args + ["--quiet"])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
