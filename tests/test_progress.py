"""Progress output as verbose asks (skvae._progress)."""


def test_verbose_zero_prints_nothing(capsys, make_vae, correlated):
    X = correlated
    make_vae(verbose=0).fit(X)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_prints_one_line_per_epoch_in_logs(capsys, make_vae, correlated):
    X = correlated
    make_vae(verbose=1, max_iter=3, early_stopping=True).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch 1/3, loss = ") and "val_elbo" in lines[0]
    assert "\r" not in "".join(lines)

