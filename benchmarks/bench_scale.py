"""Past one process: DDP training, training from a memory map, inference on Dask.

What it measures
----------------
1. **DDP on the CPU.** The same model trained by one process and by two (torch's
   DistributedDataParallel over ``gloo`` on loopback, each rank with half the
   rows), every process with one thread, on a network big enough that
   computation, not communication, dominates: two hidden layers of 512 on 200
   features, and 512 rows per rank and step (an all-reduce of the 3 MB of
   gradients costs about 7 ms a step over gloo here, whatever the batch; 128
   rows take about 9 ms to compute, 512 about 30). Three runs: one process
   with ``batch_size=512``; two ranks with 512 each (steps of 1,024 rows, as
   DDP is usually run); two ranks with 256 each (steps of 512 rows: the same
   steps as the one process). Reported: training samples per second (rows
   stepped over per second of fit, set-up included), and the time each run
   needs to reach the held-out ELBO that the one-process run reaches at its
   last epoch (per-epoch scores from a callback; the callback's own scoring
   time is excluded).
2. **Training from a memory map.** A float32 ``.npy`` file opened with
   ``np.load(path, mmap_mode="r")``, one epoch of ``fit``; the peak of the
   process's *anonymous* memory (``RssAnon``, sampled every 5 ms: mapped file
   pages are the OS's cache, not the process's) against the file's size.
3. **``skvae.dask.transform``** of a float32 table read from disk, block by
   block, on a two-worker ``LocalCluster`` (one thread each), against the
   in-memory ``transform`` of a slice in this process with one thread (so the
   ratio says how much of two cores Dask turns into throughput); and each
   worker's peak resident memory during the computation (``VmHWM`` after a
   reset through ``/proc/self/clear_refs``). Each block is read with
   ``np.fromfile`` inside a blockwise task, which dask fuses with
   ``transform``'s, so blocks never travel between workers.

How to run
----------
::

    python benchmarks/bench_scale.py                      # all three, about 5 minutes
    python benchmarks/bench_scale.py --only ddp --epochs 6
    python benchmarks/bench_scale.py --only dask --dask-rows 10000000

Linux only (it reads ``/proc``). Needs ``dask[distributed]`` for the third part.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DDP_FEATURES, DDP_HIDDEN, DDP_COMPONENTS = 200, (512, 512), 16


# ------------------------------------------------------------------------- DDP


def ddp_data(n_rows, seed):
    projection = np.random.RandomState(42).normal(size=(DDP_COMPONENTS, DDP_FEATURES))
    rng = np.random.RandomState(seed)
    latent = rng.normal(size=(n_rows, DDP_COMPONENTS))
    return (np.tanh(latent @ projection / 4) + 0.1 * rng.normal(size=(n_rows, DDP_FEATURES))
            ).astype(np.float32)


def ddp_worker(rank, world, port, rows, epochs, out, batch_size=128):
    """One process of a DDP run (world > 1) or the single-process reference."""
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    from skvae import VAETransformer

    X, held_out = ddp_data(rows, 0), ddp_data(2000, 1)
    params = {"hidden_layer_sizes": DDP_HIDDEN, "n_components": DDP_COMPONENTS,
              "max_iter": epochs, "batch_size": batch_size, "random_state": 0}
    if world > 1:
        import datetime

        import torch.distributed as dist

        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world, timeout=datetime.timedelta(seconds=120))
        X = np.array_split(X, world)[rank]
        params["distributed"] = True
    curve = EpochScores(held_out)
    start = time.perf_counter()
    vae = VAETransformer(**params).set_callbacks(curve).fit(X)
    seconds = time.perf_counter() - start - curve.scoring_seconds
    if world > 1:
        dist.destroy_process_group()
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"seconds": seconds, "rows": rows * vae.n_iter_,
                       "times": curve.times, "scores": curve.scores}, f)


class EpochScores:
    """A callback: the held-out ELBO after each epoch and when it was reached."""

    def __init__(self, held_out):
        self.held_out = held_out
        self.times, self.scores = [], []
        self.scoring_seconds = 0.0
        self.start = time.perf_counter()

    def setup(self, estimator, context):
        self.start = time.perf_counter()

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        if context.task_name != "epoch":
            return False
        began = time.perf_counter()
        self.times.append(began - self.start - self.scoring_seconds)
        self.scores.append(fitted_estimator.score(self.held_out, ))
        self.scoring_seconds += time.perf_counter() - began
        return False


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ddp(world, rows, epochs, batch_size=128):
    out = tempfile.mktemp(suffix=".json")
    port = str(free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen([sys.executable, __file__, "--ddp-worker", str(rank), str(world), port,
                          str(rows), str(epochs), out, str(batch_size)], env=env)
        for rank in range(world)
    ]
    for process in processes:
        if process.wait(timeout=3600) != 0:
            raise RuntimeError(f"a DDP process failed with code {process.returncode}")
    with open(out) as f:
        return json.load(f)


def bench_ddp(rows, epochs, batch):
    print(f"DDP on the CPU: {rows:,} x {DDP_FEATURES} float32, hidden {DDP_HIDDEN}, "
          f"k={DDP_COMPONENTS}, {epochs} epochs, one thread per process")
    runs = [(1, batch, run_ddp(1, rows, epochs, batch)),
            (2, batch, run_ddp(2, rows, epochs, batch)),
            (2, batch // 2, run_ddp(2, rows, epochs, batch // 2))]
    target = runs[0][2]["scores"][-1]
    print(f"{'processes':>9} {'rows/rank':>9} {'rows/step':>9} {'samples/s':>10} {'speed-up':>9} "
          f"{'final ELBO':>11} {'s to ELBO ' + format(target, '.2f'):>18}")
    base = runs[0][2]["rows"] / runs[0][2]["seconds"]
    for world, batch, run in runs:
        rate = run["rows"] / run["seconds"]
        reached = [t for t, s in zip(run["times"], run["scores"]) if s >= target - 1e-9]
        to_target = f"{reached[0]:.1f}" if reached else "not reached"
        print(f"{world:>9} {batch:>9} {world * batch:>9} {rate:>10,.0f} {rate / base:>8.2f}x "
              f"{run['scores'][-1]:>11.3f} {to_target:>18}")
    print()


# ------------------------------------------------------------------- memory map


def anonymous_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


class PeakSampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.running = anonymous_bytes(), True

    def run(self):
        while self.running:
            self.peak = max(self.peak, anonymous_bytes())
            time.sleep(0.005)


def memmap_worker(path):
    import torch  # noqa: F401

    warnings.simplefilter("ignore")
    from skvae import VAETransformer

    VAETransformer(max_iter=1).fit(np.random.rand(200, 100))  # warm up
    X = np.load(path, mmap_mode="r")
    vae = VAETransformer(n_components=10, max_iter=1, random_state=0)
    sampler = PeakSampler()
    base = anonymous_bytes()
    sampler.start()
    vae.fit(X)
    sampler.running = False
    sampler.join()
    model = 4 * sum(p.numel() * p.element_size() for p in vae.module_.parameters())
    print(json.dumps({"peak": sampler.peak - base, "model": model}))


def write_rows(path, rows, seed, block=500_000):
    """A ``.npy`` file of ``rows`` x 100 standard normal float32 values, written
    block by block (never whole in memory)."""
    data = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, 100))
    rng = np.random.RandomState(seed)
    for start in range(0, rows, block):
        stop = min(rows, start + block)
        data[start:stop] = rng.normal(size=(stop - start, 100))
    data.flush()


def bench_memmap(rows):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "rows.npy")
        write_rows(path, rows, seed=0)
        size = os.path.getsize(path)
        out = subprocess.run([sys.executable, __file__, "--memmap-worker", path],
                             capture_output=True, text=True, check=True, timeout=3600)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
    mib = 2**20
    target = 0.1 * size + figures["model"]
    print(f"Training from a memory map: {rows:,} x 100 float32, one epoch")
    print(f"file {size / mib:.0f} MiB, model {figures['model'] / mib:.1f} MiB, "
          f"peak anonymous memory during fit {figures['peak'] / mib:.1f} MiB "
          f"= {figures['peak'] / size:.3f}x the file (target <= 0.1x + model: "
          f"{'met' if figures['peak'] <= target else 'MISSED'})\n")


# ------------------------------------------------------------------------ Dask


def reset_peak_memory():
    """Reset this process's peak resident memory (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_memory():
    """This process's peak resident memory since the last reset, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def bench_dask(rows, block_rows):
    import dask
    import dask.array as da
    import distributed
    import torch

    warnings.simplefilter("ignore")
    from skvae import VAETransformer
    from skvae import dask as skvae_dask

    vae = VAETransformer(n_components=10, max_iter=2, random_state=0)
    vae.fit(np.random.RandomState(0).normal(size=(20_000, 100)).astype(np.float32))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "rows.npy")
        write_rows(path, rows, seed=1)

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        X = np.load(path, mmap_mode="r")
        piece = np.ascontiguousarray(X[: min(rows, 1_000_000)])
        vae.transform(piece[:1000])
        start = time.perf_counter()
        vae.transform(piece)
        local_rate = len(piece) / (time.perf_counter() - start)
        torch.set_num_threads(threads)

        with open(path, "rb") as f:
            np.lib.format.read_magic(f)
            np.lib.format.read_array_header_1_0(f)
            offset = f.tell()

        def read(begin, end):
            """Rows ``begin:end`` of the file, read (not mapped) into a fresh array."""
            count = (end - begin) * 100
            block = np.fromfile(path, dtype=np.float32, count=count, offset=offset + begin * 400)
            return block.reshape(end - begin, 100)

        def read_block(block_info=None):
            (begin, end), _ = block_info[None]["array-location"]
            return read(begin, end)

        # A blockwise read: dask fuses it with transform's blocks, so each block
        # is read and encoded in one task, on one worker, never sent between them.
        sizes = tuple(min(block_rows, rows - b) for b in range(0, rows, block_rows))
        lazy = da.map_blocks(read_block, dtype=np.float32, chunks=(sizes, (100,)),
                             meta=np.empty((0, 100), np.float32))
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            client.run(lambda: __import__("torch").set_num_threads(1))
            codes = skvae_dask.transform(vae, lazy)
            total = codes.sum(axis=0)  # reduce on the workers; only 10 numbers come back
            client.compute(skvae_dask.transform(vae, lazy[:block_rows]).sum()).result()
            client.run(reset_peak_memory)  # workers forked from this process inherit its peak
            start = time.perf_counter()
            client.compute(total).result(timeout=3600)
            dask_rate = rows / (time.perf_counter() - start)
            peaks = client.run(peak_memory)
    mib = 2**20
    print(f"skvae.dask.transform: {rows:,} x 100 float32 from disk, blocks of {block_rows:,} "
          "rows, 2 workers x 1 thread")
    print(f"in-memory transform (1 thread): {local_rate:,.0f} rows/s; Dask: {dask_rate:,.0f} "
          f"rows/s = {dask_rate / local_rate:.2f}x (target >= 0.8x); worker peak memory: "
          + ", ".join(f"{peak / mib:.0f} MiB" for peak in peaks.values()) + "\n")


def main(argv=None):
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--ddp-worker":
        rank, world, port, rows, epochs, out, batch = sys.argv[2:9]
        return ddp_worker(int(rank), int(world), port, int(rows), int(epochs), out, int(batch))
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--memmap-worker":
        return memmap_worker(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["ddp", "memmap", "dask"], nargs="+",
                        default=["ddp", "memmap", "dask"])
    parser.add_argument("--ddp-rows", type=int, default=80_000)
    parser.add_argument("--ddp-batch", type=int, default=1024,
                        help="rows per step of the one-process run, and per rank")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--memmap-rows", type=int, default=1_000_000)
    parser.add_argument("--dask-rows", type=int, default=10_000_000)
    parser.add_argument("--block-rows", type=int, default=250_000)
    args = parser.parse_args(argv)
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}\n")
    if "ddp" in args.only:
        bench_ddp(args.ddp_rows, args.epochs, args.ddp_batch)
    if "memmap" in args.only:
        bench_memmap(args.memmap_rows)
    if "dask" in args.only:
        bench_dask(args.dask_rows, args.block_rows)


if __name__ == "__main__":
    main()
