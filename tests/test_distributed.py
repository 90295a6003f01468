"""Training on PyTorch DDP (skvae._distributed): real processes over gloo on
loopback, each with a timeout so that a hang fails the test instead of CI."""

import pickle
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from skvae import VAETransformer
from skvae._distributed import SINGLE, ShardError
from skvae._estimator import coded_rows
from skvae._fitting import latent_usage

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

TIMEOUT = 120  # seconds for a whole multi-process run

RANK_SCRIPT = textwrap.dedent("""
    import datetime, pickle, sys, warnings
    import numpy as np, torch, torch.distributed as dist
    from skvae import VAETransformer

    rank, world, port, out, case = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=60))
    with open(out + "/data.pkl", "rb") as f:
        shards, params = pickle.load(f)
    X = shards[rank]
    if case == "fewer_columns" and rank == 1:
        X = X[:, :-1]
    if case == "empty" and rank == 1:
        X = X[:0]
    if case == "dtype" and rank == 1:
        X = X.astype(np.float32)
    if case == "one_row" and rank == 1:
        X = X[:1]
    if case == "counts":
        X = np.round(np.abs(X) * 3)
        if rank == 1:
            X[0, 0] = -1  # outside the Poisson's support on this rank only
    if case == "imputer" and rank == 1:
        X[:, 2] = np.nan  # a column no row of this shard observes
    try:
        if case == "imputer":
            from skvae import VAEImputer
            imputer = VAEImputer(VAETransformer(distributed=True, **params),
                                 add_indicator=True, random_state=0).fit(X)
            result = (imputer, imputer.transform(X))
        else:
            result = VAETransformer(distributed=True, **params).fit(X)
    except Exception as exc:
        result = (type(exc).__name__, str(exc))
    # Every rank done before any tears its group down: a rank that destroys
    # gloo's group while another still talks to it can abort the process.
    dist.barrier()
    dist.destroy_process_group()
    with open(f"{out}/rank{rank}.pkl", "wb") as f:
        pickle.dump(result, f)
""")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_ranks(script, world, tmp_path, case):
    """Run the rank script on ``world`` processes; the processes and their outputs."""
    port = str(free_port())
    processes = [
        subprocess.Popen([sys.executable, str(script), str(rank), str(world), port,
                          str(tmp_path), case], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
        for rank in range(world)
    ]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=TIMEOUT)[0].decode())
    finally:
        for process in processes:
            process.kill()
    return processes, outputs


def run_ranks(tmp_path, shards, params, case="train"):
    """Fit on ``len(shards)`` processes; each rank's fitted estimator or error."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    with open(tmp_path / "data.pkl", "wb") as f:
        pickle.dump((shards, params), f)
    for attempt in range(3):
        processes, outputs = _start_ranks(script, len(shards), tmp_path, case)
        # The free port may be taken by another process before rank 0 binds it.
        if not any("address already in use" in out.lower() for out in outputs):
            break
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output
    results = []
    for rank in range(len(shards)):
        with open(tmp_path / f"rank{rank}.pkl", "rb") as f:
            results.append(pickle.load(f))
    return results


def data(n=1200, seed=0):
    """Rows near a curved 3-D surface in 10-D; ``seed`` draws the rows."""
    projection = np.random.RandomState(42).normal(size=(3, 10))
    rng = np.random.RandomState(seed)
    return np.tanh(rng.normal(size=(n, 3)) @ projection) + 0.1 * rng.normal(size=(n, 10))


PARAMS = {"hidden_layer_sizes": (32,), "n_components": 3, "max_iter": 30, "batch_size": 64,
          "learning_rate_init": 3e-3, "random_state": 0}


@pytest.mark.slow
def test_two_ranks_train_one_model_like_one_process_on_all_rows(tmp_path):
    X, held_out = data(), data(600, seed=1)
    shards = [X[:700], X[700:]]  # uneven
    # Each step averages one batch per rank: half the batch on two ranks gives
    # the single process's steps (64 rows each).
    ranks = run_ranks(tmp_path, shards, {**PARAMS, "early_stopping": True, "batch_size": 32})
    a, b = ranks
    for (name, p), q in zip(a.module_.state_dict().items(), b.module_.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    assert a.n_iter_ == b.n_iter_ and a.validation_scores_ == b.validation_scores_
    np.testing.assert_array_equal(a.transform(held_out), b.transform(held_out))
    # The statistics are those of all rows, not of a shard.
    union = VAETransformer(**{**PARAMS, "max_iter": 1}).fit(X).module_.observation
    lik = a.module_.observation.likelihoods[0]
    np.testing.assert_allclose(lik.loc, union.likelihoods[0].loc, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(lik.scale, union.likelihoods[0].scale, rtol=1e-6)
    # And the model scores held-out rows as one process trained on all rows does.
    single = VAETransformer(**{**PARAMS, "early_stopping": True}).fit(X)
    assert a.score(held_out) == pytest.approx(single.score(held_out), abs=0.5)
    # The use of each latent dimension is measured on all ranks' rows.
    np.testing.assert_array_equal(a.kl_per_component_, b.kl_per_component_)
    on_all_rows = latent_usage(a.module_, coded_rows(a, X), torch.device("cpu"))
    np.testing.assert_allclose(a.kl_per_component_, on_all_rows["kl_per_component_"],
                               rtol=1e-6)


@pytest.mark.slow
def test_ranks_agree_on_the_size_auto_chooses(tmp_path):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 2)) @ rng.normal(size=(2, 6)) + 0.1 * rng.normal(size=(400, 6))
    params = {**PARAMS, "n_components": "auto", "max_iter": 150}
    a, b = run_ranks(tmp_path, [X[:150], X[150:]], params)
    assert a.n_components_ == b.n_components_ == 2
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


@pytest.mark.slow
def test_categories_and_count_rule_are_merged_across_ranks(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    kinds = [np.array(["a"] * 70 + ["d"] * 3 + ["e"] * 4 + ["f"] * 3, dtype=object),
             np.array(["c"] * 55 + ["d"] * 3 + ["b"] * 2, dtype=object)]
    frames = [
        pd.DataFrame({"x": rng.normal(size=80), "kind": kinds[0], "n": rng.poisson(3, 80)}),
        pd.DataFrame({"x": rng.normal(size=60), "kind": kinds[1],
                      "n": rng.randint(0, 5000, 60)}),  # beyond the discrete range here
    ]
    # "d" is rare on each rank (3 rows) but not on all (6): the counts are
    # merged before min_frequency groups the rare categories.
    a, b = run_ranks(tmp_path, frames, {"max_iter": 3, "random_state": 0, "min_frequency": 5})
    for fitted in (a, b):
        heads = {type(lik).__name__: lik for lik in fitted.module_.observation.likelihoods}
        kind = heads["Categorical"]
        assert kind.categories == [("a", "b", "c", "d", "e", "f")]
        assert kind.counts == [(70, 2, 55, 6, 4, 3)] and kind.infrequent == [(1, 4, 5)]
        # Rank 0 reads "n" as discrete, rank 1 as Gaussian: both take Gaussian.
        assert [s.likelihood for s in fitted._specs] == ["gaussian", "categorical", "gaussian"]
    np.testing.assert_array_equal(a.transform(frames[0]), b.transform(frames[0]))


@pytest.mark.slow
def test_covariates_are_pooled_across_ranks(tmp_path):
    """Rank 0 sees batches A and B, rank 1 B and C: both ranks one-hot the
    three, train the same weights, draw sample()'s covariates from every
    rank's rows, and standardise a numeric covariate on all of them."""
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)
    frames = []
    for batches, n, shift in ((["A", "B"], 90, 0.0), (["B", "C"], 70, 3.0)):
        frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
        frame["batch"] = pd.Categorical(rng.choice(batches, n))
        frame["dose"] = rng.uniform(0, 2, n) + shift
        frames.append(frame)
    params = {"hidden_layer_sizes": (8,), "max_iter": 3, "random_state": 0,
              "covariates": ["batch", "dose"]}
    a, b = run_ranks(tmp_path, frames, params)
    for (name, p), q in zip(a.module_.state_dict().items(), b.module_.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    both = pd.concat(frames, ignore_index=True)
    for fitted in (a, b):
        assert fitted.column_likelihoods_["batch"]["support"] == ["A", "B", "C"]
        heads = {type(lik).__name__: lik for lik in fitted.module_.observation.likelihoods}
        assert heads["CovariateCategories"].counts == [tuple(
            int((both["batch"] == c).sum()) for c in "ABC")]
        dose = heads["CovariateNumbers"]
        np.testing.assert_allclose(dose.loc, [both["dose"].mean()], rtol=1e-10)
        np.testing.assert_allclose(dose.scale, [both["dose"].std(ddof=0)], rtol=1e-10)
        # sample(n) draws the covariate rows of every rank, with their counts.
        values, counts = fitted._covariate_draws
        coded = np.c_[both["batch"].map("ABC".index).to_numpy(float), both["dose"]]
        np.testing.assert_array_equal(values, np.unique(coded, axis=0))
        assert counts.sum() == len(both)
    pd.testing.assert_frame_equal(a.sample(50, random_state=0), b.sample(50, random_state=0))
    assert set(a.sample(400, random_state=0)["batch"]) == {"A", "B", "C"}
    np.testing.assert_array_equal(a.transform(both), b.transform(both))


@pytest.mark.slow
def test_sparse_shards_train_the_model_dense_shards_train(tmp_path):
    """Each rank reads its CSR shard a batch at a time; the ranks agree, and
    the model is the one dense shards give, bit for bit, its model of the row
    total fitted on every rank's rows."""
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.RandomState(0)
    depth = rng.lognormal(0.0, 0.5, size=(300, 1))
    X = rng.poisson(rng.gamma(0.5, 2.0, size=(1, 25)) * depth).astype(np.float64)
    params = {**PARAMS, "likelihood": "negbinom", "max_iter": 5, "early_stopping": True}
    dense = run_ranks(tmp_path, [X[:140], X[140:]], params)
    sparse = run_ranks(tmp_path, [sp.csr_matrix(X[:140]), sp.csc_matrix(X[140:])], params)
    for fitted in sparse:
        np.testing.assert_array_equal(fitted.transform(X), dense[0].transform(X))
        assert fitted.validation_scores_ == dense[0].validation_scores_
    # 25 count columns: the row total is modelled, from the totals of all ranks.
    lik = sparse[0].module_.observation.likelihoods[0]
    single = VAETransformer(**{**params, "max_iter": 1}).fit(X).module_.observation
    assert lik.depth and single.likelihoods[0].depth
    np.testing.assert_allclose(float(lik.depth_loc), float(single.likelihoods[0].depth_loc),
                               rtol=1e-12)
    np.testing.assert_allclose(float(lik.depth_scale),
                               float(single.likelihoods[0].depth_scale), rtol=1e-12)


@pytest.mark.slow
def test_ranks_score_a_wide_count_block_in_column_slices(tmp_path):
    """A batch of 32 rows of 9,000 counts is scored (and differentiated) a
    slice of columns at a time, each slice recomputed in the backward pass,
    under DDP as in one process: the ranks keep one model."""
    import skvae._likelihoods as likelihoods

    rng = np.random.RandomState(0)
    X = rng.poisson(0.2, size=(96, 9000)).astype(np.float64)
    params = {**PARAMS, "likelihood": "negbinom", "max_iter": 2, "batch_size": 32,
              "hidden_layer_sizes": (8,)}
    assert 32 * X.shape[1] > likelihoods.SCORE_CHUNK_ENTRIES  # sliced
    a, b = run_ranks(tmp_path, [X[:48], X[48:]], params)
    for (name, p), q in zip(a.module_.state_dict().items(), b.module_.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    assert np.isfinite(a.loss_curve_).all() and a.n_iter_ == 2
    np.testing.assert_array_equal(a.transform(X[:10]), b.transform(X[:10]))


@pytest.mark.slow
@pytest.mark.parametrize(
    "case, params, message",
    [
        ("fewer_columns", {}, "rank 1's shard has columns 9"),
        ("empty", {}, "failed on rank 1: Found array with 0 sample"),
        ("dtype", {}, "float32"),
        # Rank 1 cannot split one row for early stopping; rank 0 must not wait for it.
        ("one_row", {"early_stopping": True},
         "failed on rank 1: early_stopping needs at least 2 samples"),
        # A value outside the likelihood's support on rank 1 only.
        ("counts", {"likelihood": "poisson"},
         "failed on rank 1: column 0 has negative or fractional values"),
    ],
)
def test_bad_shards_fail_clearly_on_every_rank(tmp_path, case, params, message):
    X = data(200)
    results = run_ranks(tmp_path, [X[:100], X[100:]], {"max_iter": 2, **params}, case)
    for result in results:
        assert isinstance(result, tuple), "fit should have failed"
        assert message in result[1]


@pytest.mark.slow
def test_imputer_decides_empty_and_indicated_columns_over_all_ranks(tmp_path):
    X = data(200)
    rng = np.random.RandomState(0)
    first = X[:100].copy()
    first[rng.rand(100, 10) < 0.1] = np.nan
    first[:, 5] = X[:100, 5]  # observed everywhere on rank 0
    second = X[100:].copy()
    second[rng.rand(100, 10) < 0.1] = np.nan
    second[:, [5, 7]] = X[100:, [5, 7]]  # ... and column 7 observed everywhere here
    # Rank 1's column 2 is empty there (the rank script blanks it), not on rank 0.
    (a, filled_a), (b, filled_b) = run_ranks(tmp_path, [first, second], {"max_iter": 2},
                                             "imputer")
    for fitted in (a, b):
        assert not fitted._empty.any()
        assert fitted.indicator_.features_.tolist() == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    for p, q in zip(a.estimator_.module_.parameters(), b.estimator_.module_.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    # Each rank fills its own shard, with every column and the same indicators.
    assert filled_a.shape == filled_b.shape == (100, 19)
    assert np.isfinite(filled_b[:, 2]).all() and np.isfinite(filled_a).all()
    np.testing.assert_array_equal(filled_b[:, 10 + 2], 1.0)


def test_distributed_without_a_process_group_is_a_clear_error():
    with pytest.raises(ValueError, match="needs an initialised torch.distributed process group"):
        VAETransformer(distributed=True).fit(data(50))


def test_single_collective_passes_values_through():
    assert SINGLE.all_gather(3) == [3] and SINGLE.sum([1.0, 2.0]) == [1.0, 2.0]
    assert SINGLE.broadcast("x") == "x" and SINGLE.any(True) and not SINGLE.any(False)
    with pytest.raises(ShardError):
        SINGLE.raise_if_any(ShardError("bad shard"))
    SINGLE.raise_if_any(None)
