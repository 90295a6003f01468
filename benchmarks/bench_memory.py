"""Peak memory of VAETransformer.fit on a 1,000,000 x 100 table (and of
``transform`` and ``sample`` on as many rows).

What it measures
----------------
Each case runs in a fresh Python process, so that one case's allocations cannot
hide another's:

1. import numpy, torch and skvae, and fit a tiny model once (torch's allocator,
   thread pools and kernels are warmed up): the process's resident memory then
   is the *baseline*;
2. build the data, a 1,000,000 x 100 table with a 10-dimensional structure plus
   noise, written chunk by chunk into one preallocated array (no temporary
   copy);
3. reset the kernel's peak-resident-memory counter (Linux ``/proc/self/clear_refs``)
   and fit ``VAETransformer(n_components=10)`` (its default network) for one
   epoch;
4. read the peak (``VmHWM`` in ``/proc/self/status``, what ``/usr/bin/time -v``
   reports as maximum resident set size).

It prints, per case, the data's size, the model's (parameters, gradients and
Adam's two moments: four copies of the weights), the peak above the baseline,
and the target: the peak above the baseline stays under twice the data plus the
model, i.e. ``fit`` holds no more than one more data-sized copy. For float32
input there is none; float64 input needs its float32 copy (training runs in
float32), and that case is shown for information against the float64 data.

Copies of the data ``fit`` makes (documented in the user guide):

* float32, C-contiguous NumPy input: none. The array is validated in place,
  statistics are read in chunks of 16,384 rows, the tensor training reads shares
  the array's memory, early stopping holds rows out by index, and each
  minibatch (128 rows) is gathered as it is needed.
* float64 (or other) input: one float32 copy for training.
* DataFrames: one float64 matrix of the coded columns, then its float32 copy.
* On a GPU: one copy on the device when the data take at most half of its free
  memory; otherwise chunks of up to 256 MiB are sent as needed.

How to run
----------
::

    python benchmarks/bench_memory.py            # about 2 minutes on a 2-core CPU
    python benchmarks/bench_memory.py --rows 200000

Linux only (it reads ``/proc``).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

N_FEATURES = 100
N_COMPONENTS = 10
CHUNK = 100_000


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _reset_peak():
    # Writing 5 resets the peak resident set size (VmHWM) to the current one.
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def child(n_rows, dtype_name, early_stopping):
    """Run one case and print its measurements as JSON."""
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    from skvae import VAETransformer

    warnings.simplefilter("ignore", ConvergenceWarning)
    dtype = np.dtype(dtype_name)
    rng = np.random.default_rng(0)
    # Warm-up: a tiny fit brings in every library and kernel the real fit uses.
    VAETransformer(n_components=N_COMPONENTS, max_iter=1, early_stopping=early_stopping,
                   random_state=0).fit(rng.normal(size=(500, N_FEATURES)).astype(dtype))
    baseline = _status_kib("VmRSS")

    X = np.empty((n_rows, N_FEATURES), dtype=dtype)
    W = rng.normal(size=(N_COMPONENTS, N_FEATURES)).astype(dtype)
    for start in range(0, n_rows, CHUNK):
        stop = min(start + CHUNK, n_rows)
        Z = rng.normal(size=(stop - start, N_COMPONENTS)).astype(dtype)
        X[start:stop] = Z @ W
        X[start:stop] += rng.normal(scale=0.3, size=(stop - start, N_FEATURES))
    with_data = _status_kib("VmRSS")

    vae = VAETransformer(
        n_components=N_COMPONENTS, max_iter=1, early_stopping=early_stopping, random_state=0
    )
    _reset_peak()
    start = time.perf_counter()
    vae.fit(X)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    n_weights = sum(p.numel() for p in vae.module_.parameters())
    # Inference: the peak above the process before the call, against the output.
    inference = {}
    for name, call in [("transform", lambda: vae.transform(X)),
                       ("sample", lambda: vae.sample(n_rows, random_state=0))]:
        before = _status_kib("VmRSS")
        _reset_peak()
        out = call()
        inference[name] = [(_status_kib("VmHWM") - before) * 1024, out.nbytes]
        del out
    print(
        json.dumps(
            {
                "baseline": baseline * 1024,
                "with_data": with_data * 1024,
                "peak": peak * 1024,
                "data": X.nbytes,
                "model": 4 * 4 * n_weights,  # weights, gradients, 2 Adam moments (float32)
                "seconds": seconds,
                "inference": inference,
            }
        )
    )


def run_case(n_rows, dtype_name, early_stopping):
    command = [
        sys.executable, os.path.abspath(__file__), "--child", "--rows", str(n_rows),
        "--dtype", dtype_name,
    ] + (["--early-stopping"] if early_stopping else [])
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--early-stopping", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.rows, args.dtype, args.early_stopping)
        return
    if not os.path.exists("/proc/self/clear_refs"):
        sys.exit("bench_memory.py needs Linux's /proc/self/clear_refs.")

    mib = 2**20
    print(
        f"VAETransformer(n_components={N_COMPONENTS}) fit for one epoch on "
        f"{args.rows:,} x {N_FEATURES}; memory in MiB, 'peak' is above the baseline "
        "(the process after imports and a warm-up fit, before the data exist)"
    )
    header = (
        f"{'input':<8} {'early stop':>10} {'data':>8} {'model':>7} {'peak':>8} "
        f"{'peak / data':>11} {'target':>8} {'met':>4} {'fit s':>7}"
    )
    print(header)
    print("-" * len(header))
    for dtype_name, early_stopping in [
        ("float32", False), ("float32", True), ("float64", False)
    ]:
        case = run_case(args.rows, dtype_name, early_stopping)
        peak = case["peak"] - case["baseline"]
        target = 2 * case["data"] + case["model"]
        print(
            f"{dtype_name:<8} {str(early_stopping):>10} {case['data'] / mib:>8.1f} "
            f"{case['model'] / mib:>7.2f} {peak / mib:>8.1f} "
            f"{peak / case['data']:>10.2f}x {target / mib:>8.1f} "
            f"{'yes' if peak < target else 'NO':>4} {case['seconds']:>7.1f}",
            flush=True,
        )
        if dtype_name == "float32" and not early_stopping:
            inference = case["inference"]
    print(
        "\nfloat64 input is copied once to float32 for training (half the data's "
        "size), as documented."
    )
    print("\nInference on the same rows (float32 model above): peak above the process "
          "before the call, against the output's size (target: under 1.5x the output plus "
          "64 MiB of working memory for a batch, whatever the number of rows)")
    for name, (peak, out) in inference.items():
        print(f"{name:<10} output {out / mib:>8.1f} MiB  peak {peak / mib:>8.1f} MiB  "
              f"{peak / out:>5.2f}x  {'yes' if peak < 1.5 * out + 64 * mib else 'NO'}")


if __name__ == "__main__":
    main()
