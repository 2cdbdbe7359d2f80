"""What `python -m bot index` shows: a progress bar on a terminal, the plan and the summary."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from core.index_report import IndexPlan, IndexReport, Outcome, TrackResult, track_names


class BarProgress:
    """core.indexer.Progress as a rich progress bar (None: no bar, e.g. output to a pipe)."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._task: TaskID | None = None
        self._counts = dict.fromkeys(Outcome, 0)

    def started(self, plan: IndexPlan) -> None:
        self._counts = dict.fromkeys(Outcome, 0)
        if self._progress is not None:
            self._task = self._progress.add_task("indexing", total=len(plan.tracks))

    def track_done(self, result: TrackResult) -> None:
        self._counts[result.outcome] += 1
        if self._progress is None or self._task is None:
            return
        c = self._counts
        description = (
            f"resolved {c[Outcome.RESOLVED] + c[Outcome.RENEWED]} · "
            f"cached {c[Outcome.CACHED]} · failed {c[Outcome.FAILED]}"
        )
        self._progress.update(self._task, advance=1, description=description)


@contextlib.contextmanager
def progress_bar(console: Console) -> Iterator[BarProgress]:
    """A live bar on a terminal; elsewhere nothing (the summary says it all)."""
    if not console.is_terminal:
        yield BarProgress(None)
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        yield BarProgress(bar)


def describe_plan(plan: IndexPlan, limit: int = 5) -> str:
    names = [f"{p.name} ({p.track_count})" for p in plan.playlists[:limit]]
    if len(plan.playlists) > limit:
        names.append(f"{len(plan.playlists) - limit} more")
    count = len(plan.playlists)
    return (
        f"Indexing {count} playlist{'s' if count != 1 else ''}: {', '.join(names) or 'none'}; "
        f"{len(plan.tracks)} distinct tracks"
    )


def summary_lines(report: IndexReport, elapsed_s: float) -> list[str]:
    renewed = report.count(Outcome.RENEWED)
    resolved = report.count(Outcome.RESOLVED) + renewed
    lines = [
        f"{'Stopped' if report.interrupted else 'Done'} in {elapsed_s:.1f} s: resolved {resolved}"
        + (f" ({renewed} only renewed an expired stream URL)" if renewed else "")
        + f" · already cached {report.count(Outcome.CACHED)}"
        + f" · failed {report.count(Outcome.FAILED)}"
    ]
    for reason, tracks in report.failures_by_reason().items():
        lines.append(f"  failed, {reason}: {len(tracks)} — {track_names(tracks)}")
    if report.interrupted:
        lines.append(
            f"Interrupted with {report.remaining} of {len(report.plan.tracks)} tracks to go; "
            "finished tracks are cached, so running this again continues from here."
        )
    return lines
