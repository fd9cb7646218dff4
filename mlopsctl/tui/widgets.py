"""Widgets of the monitor: the overview table (updates only the cells that changed), the
alerts and audit-log panels, and the live-metrics panel."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable, Static

from mlopsctl import monitoring
from mlopsctl import semver as sv

Cell = tuple[str, str]  # (text, rich style)

LEVEL_STYLE = {"warning": "yellow", "critical": "bold red", "emergency": "bold white on red"}


def _text(cell: Cell) -> Text:
    return Text(cell[0], style=cell[1])


def version_key(version: str | None) -> tuple[Any, ...]:
    if version and sv.is_valid(version):
        return (1, sv.parse(version).sort_key())
    return (0, ())


def overview_cells(monitor: monitoring.Monitor, model: str, envs: list[str],
                   now: float) -> tuple[list[Cell], dict[str, Any]]:
    """The overview row of ``model`` as (text, style) cells, and its sort keys by column."""
    row = monitor.rows[model]
    cells: list[Cell] = [(model, "bold" if not row["deprecated"] else "dim strike"),
                         (row["latest"] or "-", "")]
    keys: dict[str, Any] = {"model": model, "latest": version_key(row["latest"])}
    for env in envs:
        live = row["environments"].get(env)
        if live and live["live"]:
            mark = " ↩" if live["rollback"] else ""
            cells.append((f"{live['live']} {live['slot']}{mark}",
                          "yellow" if live["rollback"] else ""))
            keys[f"env:{env}"] = version_key(live["live"])
        else:
            cells.append(("-", "dim"))
            keys[f"env:{env}"] = (0, ())
    last = row["last_event"]
    if last:
        cells.append((f"{last['event']} {monitoring.age(now - last['timestamp'])}",
                      "yellow" if last["event"] == "rollback" else ""))
        keys["last"] = last["timestamp"]
    else:
        cells.append(("-", "dim"))
        keys["last"] = 0
    comp = row["compliance"]
    cells.append((f"{comp:.0%}" if comp is not None else "-",
                  "" if comp is None or comp >= monitor.project.config.performance_targets
                  .constitutional_compliance else "red"))
    keys["compliance"] = comp if comp is not None else -1.0
    statuses = row["validation"]
    bad = [f"{e}: {s}" for e, s in statuses.items() if s != "passed"]
    if not statuses:
        cells.append(("-", "dim"))
    elif bad:
        cells.append((", ".join(bad), "red"))
    else:
        cells.append(("passed", "green"))
    keys["validation"] = cells[-1][0]
    health = row["health"]
    down = [e for e in row["environments"] if (s := monitor.live_stats(model, e)) and not s.up]
    if down and health == "ok":
        health = f"source down ({', '.join(down)})"
    cells.append((health, {"ok": "green", "-": "dim"}.get(health, "red")))
    keys["health"] = health
    levels = monitor.row_alert_levels(model)
    if levels:
        top = monitoring.worst(levels) or "warning"
        counts = [f"{levels.count(lv)} {lv}" for lv in reversed(monitoring.LEVELS)
                  if lv in levels]
        cells.append((", ".join(counts), LEVEL_STYLE[top]))
    else:
        cells.append(("-", "dim"))
    keys["alerts"] = (max(monitoring.rank(lv) for lv in levels) if levels else 0, len(levels))
    return cells, keys


class OverviewTable(DataTable[Text]):
    """One row per model. ``sync`` redraws only the cells whose text changed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.envs: list[str] = []
        self.cells: dict[str, list[Cell]] = {}  # every model, shown or not
        self.sort_keys: dict[str, dict[str, Any]] = {}
        self.filter_text = ""
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.updated_cells = 0  # for tests and the benchmark

    def setup(self, envs: list[str]) -> None:
        self.clear(columns=True)
        self.envs = list(envs)
        self.add_column("model", key="model")
        self.add_column("latest", key="latest")
        for env in self.envs:
            self.add_column(env, key=f"env:{env}")
        for label, key in (("last event", "last"), ("compliance", "compliance"),
                           ("validation", "validation"), ("health", "health"),
                           ("alerts", "alerts")):
            self.add_column(label, key=key)

    @property
    def column_keys(self) -> list[str]:
        return ["model", "latest", *(f"env:{e}" for e in self.envs), "last", "compliance",
                "validation", "health", "alerts"]

    def shows(self, model: str) -> bool:
        text = self.filter_text.lower()
        if not text:
            return True
        return any(text in cell[0].lower() for cell in self.cells.get(model, []))

    def sync(self, monitor: monitoring.Monitor, models: set[str], now: float) -> int:
        """Bring the rows of ``models`` up to date; returns the number of cells written."""
        written = 0
        added = False
        keys = self.column_keys
        for model in sorted(models):
            if model not in monitor.rows:
                self.cells.pop(model, None)
                self.sort_keys.pop(model, None)
                if model in self.rows:
                    self.remove_row(model)
                continue
            cells, sort_keys = overview_cells(monitor, model, self.envs, now)
            old = self.cells.get(model)
            self.cells[model] = cells
            self.sort_keys[model] = sort_keys
            shown = model in self.rows
            if not self.shows(model):
                if shown:
                    self.remove_row(model)
                continue
            if not shown:
                self.add_row(*(_text(c) for c in cells), key=model)
                written += len(cells)
                added = True
                continue
            for i, cell in enumerate(cells):
                if old is None or old[i] != cell:
                    self.update_cell(model, keys[i], _text(cell),
                                     update_width=old is None or len(cell[0]) > len(old[i][0]))
                    written += 1
                    if keys[i] == self.sort_column:
                        added = True
        if added and self.sort_column:
            self._apply_sort()
        self.updated_cells += written
        return written

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self.rebuild()

    def rebuild(self) -> None:
        self.clear()
        for model in sorted(self.cells):
            if self.shows(model):
                self.add_row(*(_text(c) for c in self.cells[model]), key=model)
        if self.sort_column:
            self._apply_sort()

    def sort_by(self, column: str) -> None:
        if self.sort_column == column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self._apply_sort()

    def _apply_sort(self) -> None:
        column = self.sort_column
        if column is None:
            return
        keys = self.sort_keys
        self.sort("model", key=lambda cell: (keys.get(str(cell), {}).get(column), str(cell)),
                  reverse=self.sort_reverse)

    def models_shown(self) -> list[str]:
        """The models in display order."""
        return [str(self.get_row_at(i)[0]) for i in range(self.row_count)]

    def selected_model(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return str(self.get_row_at(self.cursor_row)[0])
        except Exception:
            return None


class AlertsTable(DataTable[Text]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self._shown: list[tuple[Any, ...]] | None = None

    def on_mount(self) -> None:
        for col in ("level", "model", "env", "what"):
            self.add_column(col, key=col)

    def show(self, alerts: list[monitoring.Alert]) -> None:
        rows = [(a.level, a.model or "-", a.env or "-", a.message) for a in alerts]
        if rows == self._shown:
            return
        self._shown = rows
        self.clear()
        for level, model, env, message in rows:
            self.add_row(Text(level, style=LEVEL_STYLE.get(level, "")), Text(model), Text(env),
                         Text(message))
        if not rows:
            self.add_row(Text("ok", style="green"), Text("-"), Text("-"),
                         Text("no active alerts"))


class AuditLog(DataTable[Text]):
    """The newest events across the registry."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", **kwargs)
        self._shown: list[tuple[Any, ...]] = []

    def on_mount(self) -> None:
        for col in ("when", "model", "event", "version", "env", "who", "why"):
            self.add_column(col, key=col)

    def show(self, events: list[dict[str, Any]]) -> None:
        rows = [(e["at"][:19].replace("T", " "), e["model"], e["event"], e["version"] or "-",
                 e["environment"] or "-", (e["actor"] or "-").split(" <")[0],
                 e["message"] or "") for e in events]
        if rows == self._shown:
            return
        self._shown = rows
        self.clear()
        for row in rows:
            style = "yellow" if row[2] == "rollback" else ""
            self.add_row(*(Text(c, style=style) for c in row))


class LivePanel(Static):
    """Per environment with a metrics endpoint: up or down, and the newest figures."""

    def show(self, doc_live: dict[str, Any]) -> None:
        if not doc_live:
            self.update(Text("No environment has a metrics_url in .mlops/config.yaml.",
                             style="dim"))
            return
        out = Text()
        for env, entry in doc_live.items():
            out.append(f"{env:<12}", style="bold")
            if entry.get("up") is None:
                out.append("not scraped yet", style="dim")
            elif not entry["up"]:
                out.append(f"DOWN  {entry.get('error') or ''}", style="bold red")
            else:
                stats = entry.get("endpoint") or {}
                if not stats and entry.get("models"):
                    stats = next(iter(entry["models"].values()))
                out.append("up  ", style="green")
                out.append(_figures(stats))
            out.append(f"   {entry['url']}\n", style="dim")
        self.update(out)


def _figures(stats: dict[str, Any]) -> str:
    parts = []
    if stats.get("request_rate") is not None:
        parts.append(f"{stats['request_rate']:.1f} req/s")
    if stats.get("latency_p50_ms") is not None:
        parts.append(f"p50 {stats['latency_p50_ms']:.1f} ms")
    if stats.get("latency_p95_ms") is not None:
        parts.append(f"p95 {stats['latency_p95_ms']:.1f} ms")
    if stats.get("error_rate") is not None:
        parts.append(f"errors {stats['error_rate']:.1%}")
    if stats.get("accuracy") is not None:
        parts.append(f"accuracy {stats['accuracy']:.3f}")
    return "  ".join(parts) or "no traffic yet"
