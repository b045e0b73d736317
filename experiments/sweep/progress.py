"""The live progress bar of a sweep (rich), advanced by a Ray Tune callback that Tune can pickle."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

_LIVE_PROGRESS: dict[str, Any] = {}
_CALLBACK_CLASS: list[type] = []


def _progress_callback_class() -> type:
    """A Tune Callback class (built once, after Ray is imported) that advances a progress bar
    found by token, so that pickling the callback does not pickle the bar."""
    if not _CALLBACK_CLASS:
        from ray.tune import Callback

        class ProgressCallback(Callback):
            def __init__(self, token: str) -> None:
                self.token = token

            def on_trial_complete(self, iteration: int, trials: list, trial: Any,
                                  **info: Any) -> None:
                bar = _LIVE_PROGRESS.get(self.token)
                if bar is not None:
                    bar.advance(trial.last_result or {})

            def on_trial_error(self, iteration: int, trials: list, trial: Any,
                               **info: Any) -> None:
                bar = _LIVE_PROGRESS.get(self.token)
                if bar is not None:
                    bar.advance({}, error=True)

        ProgressCallback.__module__ = __name__
        ProgressCallback.__qualname__ = "ProgressCallback"
        globals()["ProgressCallback"] = ProgressCallback
        _CALLBACK_CLASS.append(ProgressCallback)
    return _CALLBACK_CLASS[0]


class _Progress:
    """A rich progress bar over finished trials (a Tune callback feeds it)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.enabled = enabled and total > 0
        self.best: dict[str, float] = {}
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TextColumn("{task.description}"))
            self.task = self.bar.add_task("", total=total)
            self.bar.start()

    def callback(self) -> Any:
        """A Tune callback advancing this bar (it holds only a token: Tune pickles callbacks)."""
        token = f"{os.getpid()}-{id(self)}"
        _LIVE_PROGRESS[token] = self
        return _progress_callback_class()(token)

    def advance(self, result: Mapping[str, Any], error: bool = False) -> None:
        if not self.enabled:
            return
        agent = result.get("agent", "")
        r = result.get("best_reward")
        if r is not None and agent:
            self.best[agent] = max(self.best.get(agent, -math.inf), float(r))
        desc = "  ".join(f"{a} {b:.4g}" for a, b in sorted(self.best.items()))
        self.bar.update(self.task, advance=1, description=("[red]error[/] " if error else "")
                        + (f"best: {desc}" if desc else ""))

    def stop(self) -> None:
        for k in [k for k, v in _LIVE_PROGRESS.items() if v is self]:
            del _LIVE_PROGRESS[k]
        if self.enabled:
            self.bar.stop()
