"""Progress output, as a training hook: a bar on a terminal, one line per epoch
in logs, or nothing."""

import sys


class Progress:
    """Reports epochs as ``verbose`` asks; a training hook (see
    :mod:`skvae._training`).

    ``verbose=0`` prints nothing. Otherwise a tqdm bar on stderr when stderr is a
    terminal (it redraws in place), and one plain line per epoch on stdout when it is
    not (a log file would fill with carriage returns).
    """

    def __init__(self, verbose):
        self.verbose = verbose
        self.bar = None
        self.total = None

    def on_train_begin(self, max_iter):
        self.total = max_iter
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
        print(
            f"Epoch {done}/{self.total}, {text}, {record.elapsed:.1f}s elapsed, "
            f"at most {left:.1f}s left",
            flush=True,
        )
        return False

    def on_train_end(self, result):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
