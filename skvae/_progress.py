"""Progress output: a bar on a terminal, one line per epoch in logs, or nothing."""

import sys
import time


class Progress:
    """Reports epochs as ``verbose`` asks.

    ``verbose=0`` prints nothing. Otherwise a tqdm bar on stderr when stderr is a
    terminal (it redraws in place), and one plain line per epoch on stdout when it is
    not (a log file would fill with carriage returns).
    """

    def __init__(self, verbose, total):
        self.verbose = verbose
        self.total = total
        self.bar = None
        if verbose and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="epoch", leave=True, file=sys.stderr)

    def update(self, epoch, loss, validation_score, start):
        if not self.verbose:
            return
        fields = {"loss": f"{loss:.4f}"}
        if validation_score is not None:
            fields["val_elbo"] = f"{validation_score:.4f}"
        if self.bar is not None:
            self.bar.set_postfix(fields, refresh=False)
            self.bar.update(1)
            return
        elapsed = time.perf_counter() - start
        left = elapsed / (epoch + 1) * (self.total - epoch - 1)
        text = ", ".join(f"{key} = {value}" for key, value in fields.items())
        print(
            f"Epoch {epoch + 1}/{self.total}, {text}, {elapsed:.1f}s elapsed, "
            f"at most {left:.1f}s left",
            flush=True,
        )

    def close(self):
        if self.bar is not None:
            self.bar.close()
