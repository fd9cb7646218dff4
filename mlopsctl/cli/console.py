"""All terminal output: JSON, rich tables, notes and progress bars. Rich is imported only when a
command renders something for humans."""

from __future__ import annotations

import json
import sys
from typing import Any

from mlopsctl.progress import Reporter

PROGRESS_MIN_BYTES = 8 << 20
_written = {"json": False}


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=4, default=str) + "\n")
    _written["json"] = True


def json_written() -> bool:
    """Whether this process already wrote a JSON document to stdout (then an error must not
    add a second one); reset by ``reset_json_written``."""
    return _written["json"]


def reset_json_written() -> None:
    _written["json"] = False


def out():
    from rich.console import Console

    # Piped output is not cut to 80 columns: tables stay readable in logs and CI.
    width = None if sys.stdout.isatty() else 120
    return Console(highlight=False, soft_wrap=True, width=width)


def err():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def note(text: str) -> None:
    """A status line on stderr (stdout stays clean for pipes)."""
    print(text, file=sys.stderr)


LARGE_TABLE = 200  # rows above which a table is printed as plain aligned text


def table(*columns: str, title: str | None = None):
    """A table for humans. Up to LARGE_TABLE rows it is rich's; beyond, rich would measure
    and wrap every cell (a second per thousand rows, a minute for a long history), so it is
    printed as plain aligned columns instead, markup taken out, one line per row."""
    from rich import box
    from rich.cells import cell_len
    from rich.markup import render
    from rich.segment import Segment
    from rich.table import Table

    class _Table(Table):
        def __rich_console__(self, console: Any, options: Any) -> Any:
            if self.row_count <= LARGE_TABLE:
                yield from super().__rich_console__(console, options)
                return
            heads = [str(c.header) for c in self.columns]
            cols = [[_plain(str(cell)) for cell in c._cells] for c in self.columns]
            widths = [max([cell_len(h), *map(cell_len, col)])
                      for h, col in zip(heads, cols, strict=True)]
            if self.title:
                yield Segment(f"{self.title}\n")
            yield Segment(_line(heads, widths) + "\n")
            yield Segment(" ".join("─" * w for w in widths) + "\n")
            for row in zip(*cols, strict=True):
                yield Segment(_line(row, widths) + "\n")

    def _plain(text: str) -> str:
        return render(text).plain if "[" in text else text

    def _line(cells: Any, widths: list[int]) -> str:
        return " ".join(c + " " * (w - cell_len(c))
                        for c, w in zip(cells, widths, strict=True)).rstrip()

    return _Table(*columns, title=title, box=box.SIMPLE_HEAD, title_justify="left",
                  pad_edge=False)


class ProgressReporter(Reporter):
    """A rich progress bar on stderr for large files; silent otherwise."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None

    def start(self, label: str, total: int) -> None:
        if not self.enabled or total < PROGRESS_MIN_BYTES:
            return
        from rich.progress import Progress

        self._progress = Progress(*progress_columns(), console=err(), transient=True)
        self._progress.start()
        self._task = self._progress.add_task(label, total=total)

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def note(self, text: str) -> None:
        note(text)


def progress_columns() -> list[Any]:
    """The progress bar's columns, sizes and speed in binary units (MiB, MiB/s) as everywhere
    else (rich's defaults are decimal: MB)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Speed(ProgressColumn):
        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text("-" if speed is None else f"{human_size(int(speed))}/s",
                        style="progress.data.speed")

    return [TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
            Speed(), TimeRemainingColumn()]


def warn_policy_drift(ws: Any) -> None:
    """Read-only commands still run on a drifted policy, but say so."""
    drift = ws.quick_policy_drift() if ws.initialized else None
    if drift:
        note(f"warning: {drift}")


def require_model(registry: Any, name: str) -> Any:
    """The model's state; UsageError (exit 2) naming what is wrong otherwise. Reads take any
    name GTO's grammar allows (uppercase, '/', monorepo 'dir:name'), as `show` lists them."""
    from mlopsctl.errors import UsageError
    from mlopsctl.gitops.tags import check_name

    state = registry.model(name)
    if state is None:
        check_name(name)
        raise UsageError(f"unknown model '{name}'", hint="mlopsctl show")
    return state


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
