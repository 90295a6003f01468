"""Progress output, as a training hook: a bar on a terminal, lines in logs, or
nothing."""

import sys
import time

#: With ``verbose=1`` and no terminal, at most one line per this many seconds
#: (and the first and last epochs), so that a log shows progress without filling up.
LINE_INTERVAL = 2.0


class Progress:
    """Reports epochs as ``verbose`` asks; a training hook (see
    :mod:`skvae._training`).

    ``verbose=0`` prints nothing. Otherwise a tqdm bar on stderr when stderr is a
    terminal (it redraws in place); when it is not (a log file would fill with
    carriage returns), plain lines on stdout: with ``verbose=1`` the first and
    last epochs and at most one line every :data:`LINE_INTERVAL` seconds between
    them, with ``verbose>=2`` one line per epoch.
    """

    def __init__(self, verbose, clock=time.perf_counter):
        self.verbose = verbose
        self.bar = None
        self.total = None
        self.clock = clock
        self.last_printed = None
        self.pending = None

    def on_train_begin(self, max_iter):
        self.total = max_iter
        self.last_printed = self.pending = None
        if self.verbose and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=max_iter, unit="epoch", leave=True, file=sys.stderr)

    def on_epoch_end(self, record):
        if not self.verbose:
            return False
        fields = {"loss": f"{record.loss:.4f}"}
        if record.validation_score is not None:
            fields["val_elbo"] = f"{record.validation_score:.4f}"
        if self.bar is not None:
            self.bar.set_postfix(fields, refresh=False)
            self.bar.update(1)
            return False
        done = record.epoch_in_call + 1
        left = record.elapsed / done * (self.total - done)
        text = ", ".join(f"{key} = {value}" for key, value in fields.items())
        line = (f"Epoch {done}/{self.total}, {text}, {record.elapsed:.1f}s elapsed, "
                f"at most {left:.1f}s left")
        now = self.clock()
        due = self.last_printed is None or now - self.last_printed >= LINE_INTERVAL
        if self.verbose >= 2 or due or done == self.total:
            print(line, flush=True)
            self.last_printed, self.pending = now, None
        else:
            self.pending = line
        return False

    def on_train_end(self, result):
        if self.pending is not None:  # the last epoch (training stopped early)
            print(self.pending, flush=True)
            self.pending = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None
