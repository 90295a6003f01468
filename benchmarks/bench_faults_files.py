"""Damaged model files and full disks: what loading and saving do.

What it measures
----------------
(a) **Every single-byte change of a saved model.** A small model is fitted on
an array and on a DataFrame (a numeric and a categorical column) and saved with
pickle, joblib and (if installed) skops. For each byte of each file, a copy
with that byte changed (XOR with a fixed pseudo-random nonzero value) is loaded
with :func:`skvae.load` in a worker process, and the outcome is counted:

* *refused*: loading raised an error (``ModelFileError`` or another);
* *identical*: it loaded and the model is the same: parameters, fitted
  attributes, ``transform``, ``score_samples``, ``inverse_transform`` and
  ``sample`` outputs (and their types) all equal the original's (bytes that do
  not matter, such as a pickle's frame header or a memo index);
* *changed*: it loaded silently with something different (target: 0);
* *crashed*: the worker process died (a signal, such as a segmentation fault
  in the unpickling of a NumPy array; target: 0). A worker that dies is
  restarted at the next byte.

(b) **A full disk.** In a process whose file-size limit
(``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored, so that a write past it fails
with ``EFBIG`` as a full disk's fails with ``ENOSPC``) lets a checkpoint's
first write through and no later one, a model is fitted with a callback that
checkpoints with :func:`skvae.save` every 10 epochs; then a saved model is
overwritten with :func:`skvae.save` at a limit below its size. It reports
whether the error reached the caller, whether the fit kept the weights it had
reached, and whether the previous files are intact.

How to run
----------
::

    python benchmarks/bench_faults_files.py             # every byte (skops: every 10th)
    python benchmarks/bench_faults_files.py --step 7    # every 7th byte: quicker
    python benchmarks/bench_faults_files.py --skops-step 1

Printed on a shared 2-core machine
----------------------------------
``python benchmarks/bench_faults_files.py`` (about 9 minutes; "refused" are
all :class:`~skvae.ModelFileError`, the last column lists any other error)::

    (a) single-byte changes (every 1th byte; of skops files every 10th), each loaded with skvae.load in a worker process
    model      format   bytes  tried  refused identical  changed  crashed  refused by other errors
    array      pickle    9162   9162     9162         0        0        0  - (33 s)
    array      joblib    9162   9162     9158         4        0        0  - (49 s)
    array      skops   232290  23229    23004       225        0        0  - (139 s)
    DataFrame  pickle    9404   9404     9404         0        0        0  - (65 s)
    DataFrame  joblib    9404   9404     9400         4        0        0  - (59 s)
    DataFrame  skops   244842  24485    24259       226        0        0  - (135 s)
    total: {'refused': 84387, 'identical': 459}

    (b) a full disk from epoch 70 of 100 (RLIMIT_FSIZE 4 KiB, SIGXFSZ ignored: writes fail with EFBIG), checkpoints every 10 epochs with skvae.save
    fit raised: OSError File too large
      its note: skvae: fit failed after training 70 epochs in this call; the estimator keeps the weights it reached (n_iter_=70; the best epoch's with early stopping) and is fitted.
    fitted after the error: True n_iter_: 70
    previous checkpoint intact: loads, of epoch 60
    temporary files left: []
    overwriting a saved pickle model on a full disk: raised OSError (File too large); previous file intact: True, loads: True; temporary files left: []
    overwriting a saved joblib model on a full disk: raised OSError (File too large); previous file intact: True, loads: True; temporary files left: []
    overwriting a saved skops model on a full disk: raised OSError (File too large); previous file intact: True, loads: True; temporary files left: []

For the previous version (a checksum of the weights only, arrays pickled as
NumPy objects, the user guide's checkpoint written with ``pickle.dump`` in
place), the report that led to this script found 0.8-1.8% of single-byte
changes to pickle and joblib files loaded silently changed, one that crashed
the process inside NumPy's unpickling, and a full disk during checkpointing
that truncated the checkpoint and rolled the estimator back to unfitted (not
measured by this script).
"""

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

FORMATS = ("pickle", "joblib", "skops")


def make_data():
    import pandas as pd

    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 2))
    frame = pd.DataFrame({"x": X[:, 0], "c": pd.Categorical(rng.choice(["a", "b"], 40))})
    return {"array": X, "DataFrame": frame}


def fit(data):
    from skvae import VAETransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VAETransformer(n_components=1, hidden_layer_sizes=(2,), max_iter=2,
                              random_state=0).fit(data)


def fingerprint(model, data):
    """Everything observable of ``model``: pickled, to compare as bytes."""
    import pandas as pd

    params = model.get_params()
    fitted = {key: value for key, value in vars(model).items()
              if key.endswith("_") and not key.startswith("_") and key != "module_"}
    weights = {k: v.numpy() for k, v in model.module_.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        codes = model.transform(data)
        outputs = [codes, model.score_samples(data), model.inverse_transform(codes),
                   model.sample(5, random_state=0)]
    outputs = [(type(out).__name__, out.to_dict() if isinstance(out, pd.DataFrame) else out)
               for out in outputs]
    return pickle.dumps((sorted(params.items(), key=str), sorted(fitted.items()), weights,
                         outputs, type(model).__name__), protocol=4)


def worker(kind, fmt, path):
    """Read positions from stdin; for each, load the damaged file and print the
    outcome. ``start N`` is printed first, so that the parent knows which
    position killed a worker that dies."""
    import skvae

    data = make_data()[kind]
    original = open(path, "rb").read()
    reference = fingerprint(skvae.load(path, format=fmt), data)
    damaged_path = path + ".damaged"
    for line in sys.stdin:
        position, value = map(int, line.split())
        damaged = bytearray(original)
        damaged[position] ^= value
        with open(damaged_path, "wb") as file:
            file.write(damaged)
        print("start", position, flush=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = skvae.load(damaged_path, format=fmt)
                same = fingerprint(model, data) == reference
            outcome = "identical" if same else "changed"
        except skvae.ModelFileError:
            outcome = "refused"
        except Exception as exc:  # refused, but not with skvae's error
            outcome = f"refused-other:{type(exc).__name__}"
        print("done", position, outcome, flush=True)


def sweep(kind, fmt, path, step):
    """Counts of outcomes over the file's bytes (every ``step``-th)."""
    size = os.path.getsize(path)
    rng = np.random.RandomState(1)
    values = rng.randint(1, 256, size)
    todo = list(range(0, size, step))
    counts, crashes, others, changed = {}, [], {}, []
    while todo:
        process = subprocess.Popen(
            [sys.executable, __file__, "--worker", kind, fmt, path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stdin = "".join(f"{p} {values[p]}\n" for p in todo)
        out, err = process.communicate(stdin)
        started = None
        for line in out.splitlines():
            words = line.split()
            if words[0] == "start":
                started = int(words[1])
            elif words[0] == "done":
                position, outcome = int(words[1]), words[2]
                todo.remove(position)
                if outcome.startswith("refused-other"):
                    others[outcome[14:]] = others.get(outcome[14:], 0) + 1
                    outcome = "refused"
                if outcome == "changed":
                    changed.append(position)
                counts[outcome] = counts.get(outcome, 0) + 1
                started = None
        if process.returncode != 0:
            if started is None:
                raise RuntimeError(f"worker failed (exit {process.returncode}) outside a load")
            crashes.append((started, process.returncode, err.strip().splitlines()[-1:]))
            counts["crashed"] = counts.get("crashed", 0) + 1
            todo.remove(started)
    return size, counts, others, changed, crashes


def part_a(step, skops_step):
    import skvae

    print(f"(a) single-byte changes (every {step}th byte; of skops files every {skops_step}th), "
          "each loaded with skvae.load in a worker process")
    formats = [f for f in FORMATS if f != "skops" or _has_skops()]
    print(f"{'model':<10} {'format':<7} {'bytes':>6} {'tried':>6} {'refused':>8} "
          f"{'identical':>9} {'changed':>8} {'crashed':>8}  refused by other errors")
    folder = tempfile.mkdtemp()
    totals = {}
    for kind, data in make_data().items():
        model = fit(data)
        for fmt in formats:
            path = skvae.save(model, os.path.join(folder, f"{kind}.{fmt}"), format=fmt)
            start = time.perf_counter()
            every = skops_step if fmt == "skops" else step
            size, counts, others, changed, crashes = sweep(kind, fmt, path, every)
            tried = sum(counts.values())
            print(f"{kind:<10} {fmt:<7} {size:>6} {tried:>6} {counts.get('refused', 0):>8} "
                  f"{counts.get('identical', 0):>9} {counts.get('changed', 0):>8} "
                  f"{counts.get('crashed', 0):>8}  {others or '-'} "
                  f"({time.perf_counter() - start:.0f} s)")
            for key, value in counts.items():
                totals[key] = totals.get(key, 0) + value
            if changed:
                print(f"    changed at bytes {changed[:20]}")
            if crashes:
                print(f"    crashed at (byte, exit status, last line on stderr) {crashes[:20]}")
    print(f"total: {totals}")


def _has_skops():
    try:
        import skops.io  # noqa: F401
    except ImportError:
        return False
    return True


# -------------------------------------------------------------- a full disk

FULL_DISK = r'''
import os, pickle, resource, signal, sys, warnings
import numpy as np
import skvae

folder = sys.argv[1]
X = np.random.RandomState(0).normal(size=(200, 4))


class Checkpoint:  # the user guide's callback
    def __init__(self, path, every):
        self.path, self.every = path, every
    def setup(self, estimator, context): pass
    def teardown(self, estimator, context): pass
    def on_fit_task_begin(self, estimator, context): pass
    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        if context.task_name == "epoch" and fitted_estimator.n_iter_ % self.every == 0:
            skvae.save(fitted_estimator, self.path)


class DiskFills:
    # From epoch ``at`` on, no file may grow past ``room`` bytes: every write
    # beyond fails (EFBIG, as a full disk's fails with ENOSPC).
    def __init__(self, at, room):
        self.at, self.room = at, room
    def setup(self, estimator, context): pass
    def teardown(self, estimator, context): pass
    def on_fit_task_begin(self, estimator, context): pass
    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        if context.task_name == "epoch" and fitted_estimator.n_iter_ == self.at:
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.room, resource.RLIM_INFINITY))


def unlimited():
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)


signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
path = os.path.join(folder, "checkpoint.pkl")
vae = skvae.VAETransformer(hidden_layer_sizes=(64,), max_iter=100, random_state=0)
vae.set_callbacks(DiskFills(at=70, room=4096), Checkpoint(path, every=10))
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae.fit(X)
    error = None
except OSError as exc:
    error = exc
unlimited()
vae.set_callbacks()
print("fit raised:", type(error).__name__, os.strerror(error.errno) if error else "")
print("  its note:", " ".join(getattr(error, "__notes__", ["(none)"])))
print("fitted after the error:", hasattr(vae, "module_"),
      "n_iter_:", getattr(vae, "n_iter_", None))
with open(path, "rb") as file:
    saved = pickle.load(file)
print("previous checkpoint intact: loads, of epoch", saved.n_iter_)
print("temporary files left:", [f for f in os.listdir(folder) if f.endswith(".tmp")])

for fmt in ("pickle", "joblib", "skops"):
    model_path = os.path.join(folder, "model." + fmt)
    try:
        skvae.save(vae, model_path, format=fmt)
    except ImportError:
        continue
    before = open(model_path, "rb").read()
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, resource.RLIM_INFINITY))
    try:
        skvae.save(saved, model_path, format=fmt)
        outcome = "nothing"
    except OSError as exc:
        outcome = f"{type(exc).__name__} ({os.strerror(exc.errno)})"
    unlimited()
    intact = open(model_path, "rb").read() == before
    loads = skvae.load(model_path, format=fmt).n_iter_ == vae.n_iter_
    print(f"overwriting a saved {fmt} model on a full disk: raised {outcome}; previous "
          f"file intact: {intact}, loads: {loads}; temporary files left: "
          f"{[f for f in os.listdir(folder) if f.endswith('.tmp')]}")
'''


def part_b():
    print("\n(b) a full disk from epoch 70 of 100 (RLIMIT_FSIZE 4 KiB, SIGXFSZ ignored: "
          "writes fail with EFBIG), checkpoints every 10 epochs with skvae.save")
    folder = tempfile.mkdtemp()
    result = subprocess.run([sys.executable, "-c", FULL_DISK, folder],
                            capture_output=True, text=True, timeout=600)
    print(result.stdout.strip())
    if result.returncode:
        print(result.stderr[-3000:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--step", type=int, default=1, help="try every STEP-th byte")
    parser.add_argument("--skops-step", type=int, default=10,
                        help="try every STEP-th byte of skops files (about 240 kB each)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    part_a(args.step, args.skops_step)
    part_b()


if __name__ == "__main__":
    main()
