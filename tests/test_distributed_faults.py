"""Faults on one rank of a distributed fit (skvae._distributed.Agreement): a
Ctrl-C, a callback's stop or error, a failing step, an all-missing shard. Real
processes over gloo on loopback, each run with a hard timeout, so that a hang
fails the test instead of blocking CI.

Each case runs several fits one after the other in the same two processes: a
collective operation left unpaired by one fit would pair wrongly with the next
fit's, or hang it."""

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from test_distributed import free_port  # one way to find a free loopback port

TIMEOUT = 120  # seconds for all the fits of one case

RANK_SCRIPT = textwrap.dedent("""
    import datetime, os, pickle, signal, sys, warnings
    import numpy as np, torch, torch.distributed as dist
    import skvae._training as training
    from skvae import VAETransformer

    rank, world, port, out, case = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                    sys.argv[4], sys.argv[5])
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=60))
    with open(out + "/data.pkl", "rb") as f:
        X, params, triggers = pickle.load(f)
    X = np.array_split(X, world)[rank]
    if case == "nan_shard" and rank == 1:
        X = np.full_like(X, np.nan)
    calls, trigger = {"n": 0}, {"at": None}

    def fault():
        if case == "callback_error":
            raise ValueError(f"boom at call {calls['n']}")
        if case == "step_error":
            raise RuntimeError(f"bad batch at call {calls['n']}")
        if case != "stop":
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, delivered to this rank

    def counted(function):
        def wrapped(*args, **kwargs):
            if not kwargs.get("zero"):
                calls["n"] += 1
                if rank == 1 and calls["n"] == trigger["at"]:
                    fault()
            return function(*args, **kwargs)
        return wrapped

    class OnEpoch:
        def setup(self, estimator, context):
            pass
        def teardown(self, estimator, context):
            pass
        def on_fit_task_begin(self, estimator, context):
            pass
        def on_fit_task_end(self, estimator, context):
            if context.task_name != "epoch":
                return False
            calls["n"] += 1
            if rank == 1 and calls["n"] == trigger["at"]:
                fault()
                return case == "stop"
            return False

    if case == "step":
        training.train_step = counted(training.train_step)
    if case == "validation":
        training.bound_total = counted(training.bound_total)
    if case == "step_error":
        training.Loss.forward = counted(training.Loss.forward)
    results = []
    for at in triggers:
        calls["n"], trigger["at"] = 0, at
        vae = VAETransformer(distributed=True, **params)
        if case in ("callback", "callback_error", "stop"):
            vae.set_callbacks(OnEpoch())
        error = None
        try:
            vae.fit(X)
        except (Exception, KeyboardInterrupt) as exc:
            error = (type(exc).__name__, str(exc))
        fitted = hasattr(vae, "module_")
        results.append({
            "error": error,
            "n_iter": getattr(vae, "n_iter_", None),
            "weights": ({k: v.numpy().copy() for k, v in vae.module_.state_dict().items()}
                        if fitted else None),
            "usable": fitted and bool(np.isfinite(vae.transform(np.zeros((3, 10)))).all()),
        })
    dist.barrier()
    dist.destroy_process_group()
    with open(f"{out}/rank{rank}.pkl", "wb") as f:
        pickle.dump(results, f)
""")


def run_case(tmp_path, case, triggers, params):
    """Run the fits of ``case`` on two ranks, rank 1 faulting at each of
    ``triggers`` (a count of calls); each rank's list of outcomes."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    with open(tmp_path / "data.pkl", "wb") as f:
        pickle.dump((data(), params, triggers), f)
    for attempt in range(3):
        port = str(free_port())
        processes = [
            subprocess.Popen([sys.executable, str(script), str(rank), "2", port,
                              str(tmp_path), case], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
            for rank in range(2)
        ]
        outputs = []
        try:
            for process in processes:
                try:
                    outputs.append(process.communicate(timeout=TIMEOUT)[0].decode())
                except subprocess.TimeoutExpired:
                    pytest.fail(f"{case}: a rank hung (no exit within {TIMEOUT} s)")
        finally:
            for process in processes:
                process.kill()
                process.wait(timeout=10)
        # The free port may be taken by another process before rank 0 binds it.
        if not any("address already in use" in out.lower() for out in outputs):
            break
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output
    out = []
    for rank in range(2):
        with open(tmp_path / f"rank{rank}.pkl", "rb") as f:
            out.append(pickle.load(f))
    return out


def data(n=400):
    rng = np.random.RandomState(0)
    return np.tanh(rng.normal(size=(n, 3)) @ rng.normal(size=(3, 10))) + 0.1 * rng.normal(
        size=(n, 10))


# 200 rows per rank, 20 held out: 180 in batches of 30, 6 steps an epoch.
PARAMS = {"hidden_layer_sizes": (16,), "n_components": 2, "max_iter": 6, "batch_size": 30,
          "early_stopping": True, "validation_fraction": 0.1, "random_state": 0}
STEPS = 6
RUNS = 5


def assert_agreed(a, b):
    """Both ranks ended the same way, with the same weights, and can be used."""
    assert a["error"] == b["error"]
    assert a["n_iter"] == b["n_iter"]
    assert a["usable"] and b["usable"]
    assert a["weights"].keys() == b["weights"].keys()
    for name in a["weights"]:
        np.testing.assert_array_equal(a["weights"][name], b["weights"][name], err_msg=name)


def interrupted(outcome, epochs):
    assert outcome["error"] == (
        "KeyboardInterrupt",
        f"Training was interrupted on rank 1 after {epochs} epochs; the estimator keeps "
        "the best weights so far and can be used.",
    )
    assert outcome["n_iter"] == epochs


@pytest.mark.slow
def test_ctrl_c_on_one_rank_at_a_step_interrupts_every_rank_there(tmp_path):
    # The first step, steps in the middle of epochs, the last step of an epoch.
    triggers = [1, 4, STEPS + 3, 2 * STEPS, 3 * STEPS + 5][:RUNS]
    for at, a, b in zip(triggers, *run_case(tmp_path, "step", triggers, PARAMS)):
        assert_agreed(a, b)
        # The epoch the signal came in is undone on every rank.
        interrupted(a, (at - 1) // STEPS)


@pytest.mark.slow
def test_ctrl_c_on_one_rank_while_scoring_held_out_rows(tmp_path):
    triggers = [1, 2, 3, 4, 5][:RUNS]
    for at, a, b in zip(triggers, *run_case(tmp_path, "validation", triggers, PARAMS)):
        assert_agreed(a, b)
        interrupted(a, at - 1)  # that epoch is not counted: it has no score


@pytest.mark.slow
def test_ctrl_c_from_a_callback_on_one_rank(tmp_path):
    triggers = [1, 2, 3, 4, 5][:RUNS]
    for at, a, b in zip(triggers, *run_case(tmp_path, "callback", triggers, PARAMS)):
        assert_agreed(a, b)
        interrupted(a, at)  # the epoch had ended


@pytest.mark.slow
def test_a_callback_stopping_on_one_rank_stops_every_rank(tmp_path):
    triggers = [2, 4]
    for at, a, b in zip(triggers, *run_case(tmp_path, "stop", triggers, PARAMS)):
        assert_agreed(a, b)
        assert a["error"] is None and a["n_iter"] == at


@pytest.mark.slow
def test_a_callback_error_on_one_rank_is_raised_on_every_rank(tmp_path):
    triggers = [1, 3]
    for at, a, b in zip(triggers, *run_case(tmp_path, "callback_error", triggers, PARAMS)):
        assert a["error"] == b["error"] == (
            "ValueError", f"distributed fit failed on rank 1: ValueError: boom at call {at}")
        # As in one process, every rank keeps the epochs trained before the
        # error (more than the unfitted model had), the same on each.
        assert_agreed(a, b)
        assert a["n_iter"] == at


@pytest.mark.slow
def test_a_failing_step_on_one_rank_is_raised_on_every_rank(tmp_path):
    triggers = [1, STEPS + 2]
    for at, a, b in zip(triggers, *run_case(tmp_path, "step_error", triggers, PARAMS)):
        assert a["error"] == b["error"] == (
            "RuntimeError",
            f"distributed fit failed on rank 1: RuntimeError: bad batch at call {at}")
        if at <= STEPS:  # in the first epoch: nothing reached, the fit is undone
            assert a["n_iter"] is None and b["n_iter"] is None
        else:  # the first epoch's weights are kept on every rank
            assert_agreed(a, b)
            assert a["n_iter"] == 1


@pytest.mark.slow
def test_an_all_missing_shard_fails_clearly_on_every_rank(tmp_path):
    a, b = run_case(tmp_path, "nan_shard", [None], PARAMS)
    assert a[0]["error"] == b[0]["error"]
    kind, message = a[0]["error"]
    assert kind == "ValueError" and "failed on rank 1" in message
    assert "no observed values (every entry of its 200 rows is missing)" in message


def doc_script(name):
    """The code block of docs/user_guide/scaling.rst that starts with ``# name``."""
    import pathlib

    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "user_guide"
            / "scaling.rst").read_text()
    start = text.index(f"   # {name}\n")
    lines = []
    for line in text[start:].splitlines():
        if line and not line.startswith("   "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


def patched(script, old, new):
    assert script.count(old) == 1, old
    return script.replace(old, new)


CRASH = '''
class Crash:
    """Rank 1 dies in the third epoch of the first attempt."""

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        if (context.task_name == "epoch" and dist.get_rank() == 1
                and fitted_estimator.n_iter_ == 3 and not os.path.exists("crashed")):
            open("crashed", "w").close()
            os._exit(1)


dist.init_process_group('''


@pytest.mark.slow
def test_torchrun_restart_recipe_resumes_from_the_checkpoint(tmp_path):
    """The user guide's restart recipe, run under torchrun: rank 1 kills itself
    in the first attempt; the second resumes from rank 0's checkpoint and ends
    after EPOCHS epochs in all."""
    import os

    from skvae import VAETransformer

    script = doc_script("train_resume.py")
    script = patched(script, 'CHECKPOINT, EPOCHS = "vae_checkpoint.pkl", 20',
                     'CHECKPOINT, EPOCHS = "vae_checkpoint.pkl", 6')
    script = patched(script, "dist.init_process_group(", CRASH)
    script = patched(
        script, "vae.set_params(warm_start=True, max_iter=EPOCHS - vae.n_iter_)",
        "vae.set_params(warm_start=True, max_iter=EPOCHS - vae.n_iter_)\n"
        '    open(f"resumed{rank}.txt", "w").write(str(vae.n_iter_))')
    script = patched(script, "vae.set_callbacks(Checkpoint(CHECKPOINT))",
                     "vae.set_callbacks(Checkpoint(CHECKPOINT), Crash())")
    (tmp_path / "train_resume.py").write_text(script)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone",
             "--nproc_per_node=2", "--max-restarts=1", "train_resume.py"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("torchrun did not finish within 300 s")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "crashed").exists()  # the first attempt failed
    resumed = [int((tmp_path / f"resumed{rank}.txt").read_text()) for rank in (0, 1)]
    # Both ranks of the restart read rank 0's checkpoint of epoch 2 or 3 (rank
    # 0 may have saved epoch 3 before torchrun stopped it).
    assert resumed[0] == resumed[1] and resumed[0] in (2, 3)
    with open(tmp_path / "vae.pkl", "rb") as f:
        vae = pickle.load(f)
    assert isinstance(vae, VAETransformer)
    assert vae.n_iter_ == 6 and len(vae.loss_curve_) == 6
    assert np.isfinite(vae.transform(np.zeros((2, 64)))).all()


def test_one_process_agreement_changes_nothing():
    from skvae._distributed import SINGLE, STOP, Agreement

    agreement = Agreement(SINGLE)

    def fails():
        raise ValueError("raised as in any fit")

    with pytest.raises(ValueError, match="raised as in any fit"):
        agreement.guard(fails)
    assert agreement.agree([1.5, 2.0]) == [1.5, 2.0] and agreement.decided == 0
    agreement.record(STOP)
    agreement.agree()
    assert agreement.decided == STOP


def test_errors_keep_their_type_across_ranks_where_every_rank_has_it():
    from skvae._distributed import RankError, ShardError, _rebuilt

    error = _rebuilt("builtins", "ValueError", "distributed fit failed on rank 1: x")
    assert type(error) is ValueError and str(error).endswith("rank 1: x")
    assert type(_rebuilt("skvae._distributed", "ShardError", "m")) is ShardError
    # A user's class may not be importable on the other ranks.
    assert type(_rebuilt("my_callbacks", "BudgetError", "m")) is RankError
    assert type(_rebuilt("builtins", "UnicodeDecodeError", "m")) is RankError
