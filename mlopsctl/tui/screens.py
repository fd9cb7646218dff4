"""Screens of the monitor: a model's detail, the help, and the dialogs of actions."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Label, OptionList, Static
from textual_plotext import PlotextPlot

from mlopsctl import monitoring
from mlopsctl.tui.widgets import LEVEL_STYLE

MAX_PLOTS = 4


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no, before anything is written."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.question, id="question")
            yield Label("[b]y[/] yes    [b]n[/] no", id="answers")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ChooseScreen(ModalScreen[str | None]):
    """Pick one of a few options (an environment, a version)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, options: list[str]) -> None:
        super().__init__()
        self.title_text = title
        self.options = options

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text)
            yield OptionList(*self.options, id="choices")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.options[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        text = Text("Keys\n\n", style="bold")
        for key, what in self.keys:
            text.append(f"  {key:<10}", style="bold cyan")
            text.append(f"{what}\n")
        text.append("\nctrl+p opens the command palette. Esc closes this help.", style="dim")
        with Vertical(id="dialog"):
            yield Static(text)

    def action_close(self) -> None:
        self.dismiss(None)


class ModelScreen(Screen[None]):
    """One model: versions with reported and recomputed metrics, a plot per metric across
    versions, the lineage of the selected version, the latest report per environment, and its
    events (rollbacks marked)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("p", "promote", "Promote"),
        Binding("b", "rollback", "Roll back"),
        Binding("a", "approve", "Approve", show=False),
        Binding("question_mark", "app.help", "Keys"),
    ]

    def __init__(self, model: str, detail: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.detail = detail

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="model-body"):
            yield Static(id="model-title")
            yield DataTable(id="versions", cursor_type="row", zebra_stripes=True)
            yield Horizontal(id="plots")
            with Horizontal(id="model-info"):
                yield Static(id="lineage")
                yield Static(id="reports")
            yield Label("Events", classes="section")
            yield DataTable(id="events", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.show(self.detail)

    def show(self, detail: dict[str, Any]) -> None:
        self.detail = detail
        stages = ", ".join(f"{s}: {v}" for s, v in detail["stages"].items()) or "nowhere"
        alerts = detail["alerts"]
        title = Text(f"{detail['model']}", style="bold")
        title.append(f"   latest {detail['latest'] or '-'}   live: {stages}")
        for a in alerts:
            title.append(f"\n{a['level']}: {a['message']}", style=LEVEL_STYLE[a["level"]])
        self.query_one("#model-title", Static).update(title)
        self._versions(detail)
        self._plots(detail)
        self._events(detail)
        self._info()

    def _versions(self, detail: dict[str, Any]) -> None:
        table = self.query_one("#versions", DataTable)
        row = table.cursor_row
        table.clear(columns=True)
        metrics = detail["metrics"]
        table.add_columns("version", "created", "stages", "parent",
                          *(f"{m} rep/re" for m in metrics))
        for v in reversed(detail["versions"]):
            cells = [v["version"], v["created_at"][:16].replace("T", " "),
                     ", ".join(v["stages"]) or "-", v["parent"] or "-"]
            for m in metrics:
                rep, rec = v["reported"].get(m), v["recomputed"].get(m)
                cells.append(f"{_fmt(rep)} / {_fmt(rec)}")
            table.add_row(*cells, key=v["version"])
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))

    def _plots(self, detail: dict[str, Any]) -> None:
        box = self.query_one("#plots", Horizontal)
        box.remove_children()
        versions = detail["versions"]
        labels = [v["version"] for v in versions]
        plots = []
        for metric in detail["metrics"][:MAX_PLOTS]:
            plot = PlotextPlot(classes="metric-plot")
            plots.append((plot, metric))
        box.mount_all([p for p, _ in plots])
        for plot, metric in plots:
            plt = plot.plt
            plt.clear_data()
            plt.title(metric)
            xs = [float(x) for x in range(1, len(labels) + 1)]
            for key, marker in (("reported", "dot"), ("recomputed", "hd")):
                pts = [(x, v[key][metric]) for x, v in zip(xs, versions, strict=True)
                       if metric in v[key]]
                if pts:
                    plt.plot([p[0] for p in pts], [p[1] for p in pts], label=key, marker=marker)
            plt.xticks(xs, labels)
            plot.refresh()

    def _events(self, detail: dict[str, Any]) -> None:
        table = self.query_one("#events", DataTable)
        table.clear(columns=True)
        table.add_columns("when", "event", "version", "env", "who", "why")
        for e in detail["events"]:
            style = "yellow" if e["rollback"] else ("cyan" if e["event"] == "approve" else "")
            event = "rollback ↩" if e["rollback"] else e["event"]
            table.add_row(*(Text(str(c), style=style) for c in (
                e["at"][:19].replace("T", " "), event, e["version"] or "-",
                e["environment"] or "-", (e["actor"] or "-").split(" <")[0],
                e["message"] or "")))

    def selected_version(self) -> str | None:
        table = self.query_one("#versions", DataTable)
        if not table.row_count:
            return None
        return str(table.get_row_at(table.cursor_row)[0])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "versions":
            self._info()

    def _info(self) -> None:
        version = self.selected_version()
        found = next((v for v in self.detail["versions"] if v["version"] == version), None)
        lineage = Text("Lineage", style="bold")
        if found:
            chain: list[str] = []
            parent = found["parent"]
            by_number = {v["version"].removeprefix("v"): v for v in self.detail["versions"]}
            while parent and len(chain) < 10:
                chain.append(parent)
                parent = (by_number.get(parent.removeprefix("v")) or {}).get("parent")
            lineage.append(f" of {found['version']}\n")
            lineage.append(f"parents: {' <- '.join(chain) or 'none'}\n")
            lin = found["lineage"] or {}
            code = lin.get("code_commit")
            lineage.append(f"code: {code[:12] if code else '-'}"
                           f"{' (dirty)' if lin.get('code_dirty') else ''}\n")
            for d in lin.get("data", []):
                lineage.append(f"data: {d['path']} {d['sha256'][:12]}\n")
            if lin.get("params"):
                lineage.append(f"params: {lin['params']}\n")
        self.query_one("#lineage", Static).update(lineage)
        reports = Text("Latest report per environment\n", style="bold")
        for env, r in self.detail["latest_reports"].items():
            style = "green" if r.get("passed") else "red"
            comp = r.get("compliance")
            reports.append(f"{env}: ", style="bold")
            reports.append(f"{r.get('status')} ", style=style)
            reports.append(f"{r['version']} at {str(r.get('validated_at'))[:16]}"
                           f"{f', compliance {comp:.0%}' if comp is not None else ''}\n")
            for rule in r.get("rules", []):
                ok = rule.get("passed")
                reports.append(f"  {'✓' if ok else '✗'} {rule.get('id', rule.get('rule', ''))}\n",
                               style="" if ok else "red")
        if not self.detail["latest_reports"]:
            reports.append("no validation reports yet", style="dim")
        self.query_one("#reports", Static).update(reports)

    def action_promote(self) -> None:
        self.app.action_promote(self.model, self.selected_version())  # type: ignore[attr-defined]

    def action_rollback(self) -> None:
        self.app.action_rollback(self.model)  # type: ignore[attr-defined]

    def action_approve(self) -> None:
        self.app.action_approve(self.model, self.selected_version())  # type: ignore[attr-defined]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def alert_lines(alerts: list[monitoring.Alert]) -> Text:
    out = Text()
    for a in alerts:
        out.append(f"{a.level}: {a.message}\n", style=LEVEL_STYLE.get(a.level, ""))
    return out


