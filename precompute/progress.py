"""Progress bars: tqdm's on a terminal, periodic plain lines in a log (a SLURM job's, a pipe).

tqdm redraws its bar with carriage returns ten times a second, which in a file is one endless
line of redraws. When the stream is not a terminal, `progress` prints whole lines instead: the
first state, then at most one line every LOG_INTERVAL seconds (tqdm's own TQDM_MININTERVAL
environment variable sets another interval), then the last state with the time it took.
The libraries' own bars (transformers' "Loading weights") are turned off there (precompute.models).
"""

from __future__ import annotations

import os
import sys

from tqdm import tqdm

LOG_INTERVAL = 30.0  # seconds between two lines in a log
LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"  # tqdm's, without the bar


class LogLines(tqdm):
    """A tqdm that writes one line per state it shows: no carriage return, no clearing."""

    def __init__(self, *args, **kwargs):
        self._shown: tuple | None = None  # (count, postfix) of the last line written
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        if msg == "":  # tqdm erasing a bar: a log keeps its lines
            return False
        state = (self.n, self.postfix)
        if msg is None and state == self._shown:  # a redraw (after tqdm.write): nothing new to say
            return True
        self._shown = state
        self.fp.write(f"{self if msg is None else msg}\n")
        self.fp.flush()
        return True

    def clear(self, nolock=False):
        pass  # nothing on a screen to erase

    def close(self):
        if not self.disable and not getattr(self.fp, "closed", False):
            self.display()  # the last count, with the elapsed time
        self.leave = False  # tqdm would end the bar with a newline of its own
        super().close()


def on_terminal(stream=None) -> bool:
    stream = stream if stream is not None else sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def progress(iterable=None, *, file=None, **kwargs) -> tqdm:
    """tqdm(iterable, **kwargs) drawn as a bar on a terminal, as LogLines anywhere else."""
    stream = file if file is not None else sys.stderr
    if on_terminal(stream):
        return tqdm(iterable, file=stream, dynamic_ncols=True, **kwargs)
    if "TQDM_MININTERVAL" not in os.environ:
        kwargs.setdefault("mininterval", LOG_INTERVAL)
    return LogLines(iterable, file=stream, bar_format=LOG_FORMAT, **kwargs)
