"""The progress bar of a long pass, on stderr (stdout stays for --json and pipes).

rich's own time-remaining column estimates speed over a sliding window and shows "-:--:--" when
progress arrives in large steps (one committed chunk at a time); here the estimate is the plain
average so far, shown from the first completed chunk on.
"""

from __future__ import annotations

import time
from typing import Callable


def eta_text(elapsed: float, done: int, total: int) -> str:
    """'eta M:SS' from the average time per sample so far; '' before the first sample is done."""
    if done <= 0 or total <= done:
        return "" if done <= 0 else "done"
    seconds = round(elapsed / done * (total - done))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"eta {hours}:{minutes:02d}:{seconds:02d}" if hours else f"eta {minutes}:{seconds:02d}"


class ProgressBar:
    """`with ProgressBar(total, label, enabled) as advance: advance(n)`; a no-op when not enabled."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.total, self.label, self.enabled = total, label, enabled

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda _n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
        from rich.text import Text

        started = time.perf_counter()

        class Eta(ProgressColumn):
            def render(self, task) -> Text:
                return Text(eta_text(time.perf_counter() - started, int(task.completed), int(task.total or 0)))

        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Eta(), console=Console(stderr=True)
        )
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc) -> bool:
        if self.enabled:
            self.bar.stop()
        return False
