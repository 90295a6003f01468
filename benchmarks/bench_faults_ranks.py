"""Ctrl-C on one rank of a two-rank fit, counted: hangs against agreed exits.

Each run starts two processes that fit one model over gloo on loopback
(``distributed=True``, early stopping on, 8 epochs of 6 steps); rank 1 sends
itself a SIGINT at a random point: before a random training step, while
scoring the held-out rows of a random epoch, or from a callback at the end of
a random epoch. Every run has a hard timeout (``--timeout`` seconds from the
start): a run whose processes have not both exited by then is a hang.
A clean agreed exit is one where both ranks raised KeyboardInterrupt with the
same message, naming rank 1, and hold the same, usable weights. Seconds to exit
run from the SIGINT to the later of the two ranks' leaving ``fit`` (raising),
and to the later of the two processes' exits (after the rank script's checks
and its process group's and interpreter's tear-down).

Run::

    python benchmarks/bench_faults_ranks.py             # 20 runs
    python benchmarks/bench_faults_ranks.py --runs 5

Printed on a shared 2-core machine (other jobs running; ``--runs 20``)::

    runs: 20  hangs: 0  clean agreed exits: 20  mean seconds to exit: 0.027 from fit, 9.49 from the processes

(10 of the points were in the validation pass, 6 in a callback, 4 before a
step. The processes' exit is slow there because the machine was loaded: each
rank then checks its model, waits at a barrier, and tears torch down.)
"""

import argparse
import os
import pickle
import random
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

RANK_SCRIPT = textwrap.dedent("""
    import datetime, os, pickle, signal, sys, time, warnings
    import numpy as np, torch, torch.distributed as dist
    import skvae._training as training
    from skvae import VAETransformer

    rank, port, out, point, at = (int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4],
                                  int(sys.argv[5]))
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2, timeout=datetime.timedelta(seconds=30))
    rng = np.random.RandomState(0)
    X = np.tanh(rng.normal(size=(400, 3)) @ rng.normal(size=(3, 10)))
    X = np.array_split(X + 0.1 * rng.normal(size=X.shape), 2)[rank]
    calls = [0]

    def maybe_interrupt():
        calls[0] += 1
        if rank == 1 and calls[0] == at:
            with open(out + "/sent", "w") as f:
                f.write(repr(time.time()))
            os.kill(os.getpid(), signal.SIGINT)

    def counted(function):
        def wrapped(*args, **kwargs):
            maybe_interrupt()
            return function(*args, **kwargs)
        return wrapped

    class OnEpoch:
        def setup(self, estimator, context): pass
        def teardown(self, estimator, context): pass
        def on_fit_task_begin(self, estimator, context): pass
        def on_fit_task_end(self, estimator, context):
            if context.task_name == "epoch":
                maybe_interrupt()

    vae = VAETransformer(distributed=True, hidden_layer_sizes=(16,), n_components=2,
                         max_iter=8, batch_size=30, early_stopping=True,
                         validation_fraction=0.1, random_state=0)
    if point == "step":
        training.train_step = counted(training.train_step)
    elif point == "validation":
        training.bound_total = counted(training.bound_total)
    else:
        vae.set_callbacks(OnEpoch())
    error = None
    try:
        vae.fit(X)
    except (Exception, KeyboardInterrupt) as exc:
        error = (type(exc).__name__, str(exc))
    left = time.time()
    usable = hasattr(vae, "module_") and bool(np.isfinite(vae.transform(X[:3])).all())
    weights = [p.detach().numpy().copy() for p in vae.module_.parameters()] if usable else None
    dist.barrier()
    dist.destroy_process_group()
    with open(f"{out}/rank{rank}.pkl", "wb") as f:
        pickle.dump((error, usable, weights, left), f)
""")

STEPS, EPOCHS = 6, 8


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_run(script, out, point, at, timeout):
    """Start the two ranks; (hung, clean agreed exit, seconds from the SIGINT
    to the later rank's leaving ``fit`` and to its process's exit)."""
    port = str(free_port())
    start = time.time()
    processes = [subprocess.Popen([sys.executable, script, str(rank), port, out, point,
                                   str(at)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for rank in range(2)]
    exits = [None, None]
    while None in exits and time.time() - start < timeout:
        for rank, process in enumerate(processes):
            if exits[rank] is None and process.poll() is not None:
                exits[rank] = time.time()
        time.sleep(0.01)
    for process in processes:
        process.kill()
        process.wait(timeout=10)
    if None in exits:
        return True, False, None, None
    outcomes = []
    for rank in range(2):
        try:
            with open(os.path.join(out, f"rank{rank}.pkl"), "rb") as f:
                outcomes.append(pickle.load(f))
        except FileNotFoundError:
            outcomes.append(None)
    with open(os.path.join(out, "sent")) as f:
        sent = float(f.read())
    left = max(o[3] for o in outcomes) - sent if None not in outcomes else None
    return False, agreed(outcomes), left, max(exits) - sent


def agreed(outcomes):
    if None in outcomes:
        return False
    (error_a, usable_a, weights_a, _), (error_b, usable_b, weights_b, _) = outcomes
    return (error_a == error_b and error_a is not None and error_a[0] == "KeyboardInterrupt"
            and "on rank 1" in error_a[1] and usable_a and usable_b
            and all((a == b).all() for a, b in zip(weights_a, weights_b)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    hangs = clean = 0
    seconds, exits = [], []
    with tempfile.TemporaryDirectory() as folder:
        script = os.path.join(folder, "rank.py")
        with open(script, "w") as f:
            f.write(RANK_SCRIPT)
        for run in range(args.runs):
            point = rng.choice(["step", "validation", "callback"])
            at = rng.randint(1, STEPS * EPOCHS if point == "step" else EPOCHS)
            out = tempfile.mkdtemp(dir=folder)
            hung, ok, left, took = one_run(script, out, point, at, args.timeout)
            hangs += hung
            clean += ok
            if left is not None:
                seconds.append(left)
                exits.append(took)
            print(f"run {run + 1}: SIGINT at {point} {at}: "
                  f"{'hang' if hung else 'agreed' if ok else 'NOT agreed'}"
                  + ("" if left is None else
                     f", fit left {left:.3f} s after, processes exited {took:.2f} s after"),
                  flush=True)
    print(f"runs: {args.runs}  hangs: {hangs}  clean agreed exits: {clean}  "
          f"mean seconds to exit: {mean(seconds):.3f} from fit, "
          f"{mean(exits):.2f} from the processes")


def mean(values):
    return sum(values) / len(values) if values else float("nan")


if __name__ == "__main__":
    main()
