"""Progress output as verbose asks (skvae._progress)."""

import skvae._progress as progress


def test_verbose_zero_prints_nothing(capsys, make_vae, correlated):
    X = correlated
    make_vae(verbose=0).fit(X)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_two_prints_one_line_per_epoch_in_logs(capsys, make_vae, correlated):
    X = correlated
    make_vae(verbose=2, max_iter=3, early_stopping=True).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch 1/3, loss = ") and "val_elbo" in lines[0]
    assert "\r" not in "".join(lines)


def test_verbose_one_prints_a_line_every_few_seconds_in_logs(capsys, monkeypatch, make_vae,
                                                             correlated):
    # A clock that moves 0.9 s per epoch: a line every third epoch, plus the last.
    clock = iter(0.9 * i for i in range(1000))
    monkeypatch.setattr("skvae._estimator.Progress",
                        lambda verbose: progress.Progress(verbose, clock=lambda: next(clock)))
    make_vae(verbose=1, max_iter=8, tol=1e3, n_iter_no_change=100).fit(correlated)
    lines = capsys.readouterr().out.strip().splitlines()
    epochs = [int(line.split()[1].split("/")[0]) for line in lines]
    assert epochs == [1, 4, 7, 8]
