"""Progress in a log is whole lines, at most one per interval; on a terminal it is tqdm's bar."""

from __future__ import annotations

import io

from tqdm import tqdm

from precompute.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_the_first_and_the_last_line_only_within_the_interval(monkeypatch):
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    log = io.StringIO()
    for _ in progress(range(500), desc="describe", unit="painting", file=log):
        pass  # far quicker than the 30 s between two lines
    lines = log.getvalue().splitlines()
    assert log.getvalue().endswith("\n") and "\r" not in log.getvalue() and "\x1b" not in log.getvalue()
    assert len(lines) == 2
    assert lines[0].startswith("describe: 0/500 [") and lines[1].startswith("describe: 500/500 [")


def test_every_state_is_one_line_when_the_interval_allows_it():
    log = io.StringIO()
    for _ in progress(range(4), desc="sam", file=log, mininterval=0):
        pass
    assert [line.split(" [")[0] for line in log.getvalue().splitlines()] == [f"sam: {n}/4" for n in range(5)]


def test_messages_and_postfixes_in_between_repeat_no_line():
    log = io.StringIO()
    bar = progress(total=2, desc="precompute", unit="stage", file=log)
    for stage in ("describe", "reliance"):
        bar.set_postfix_str(stage)  # a new line: the stage that starts
        tqdm.write(f"{stage}: 3 done", file=log)  # tqdm redraws its bars after a message
        bar.update()
    bar.close()
    lines = log.getvalue().splitlines()
    assert [line for line in lines if not line.startswith("precompute")] == ["describe: 3 done", "reliance: 3 done"]
    bars = [line for line in lines if line.startswith("precompute")]
    assert len(bars) == len(set(bars)) == 4  # start, one per stage, the end
    assert bars[1].endswith(", describe]") and bars[2].startswith("precompute: 1/2") and bars[3].startswith(
        "precompute: 2/2")


def test_a_terminal_gets_the_redrawn_bar():
    screen = Terminal()
    for _ in progress(range(3), desc="describe", file=screen, mininterval=0):
        pass
    assert "\r" in screen.getvalue() and "|" in screen.getvalue()  # tqdm's bar, redrawn in place
