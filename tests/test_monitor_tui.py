"""The Textual monitor, driven by key presses: filter, sort, drill-down, back, help, promote and
roll back with a confirmation, errors shown without a crash, a version registered while the
app runs, live metrics from a real Prometheus endpoint that goes down mid-run; and snapshots of
the main screens (a registry with fixed dates and a fixed clock, so they do not drift)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git, run
from monitor_fixtures import ServeLike, fixed_registry, prepared, prometheus, set_env, use

from mlopsctl.tui.app import MonitorApp
from mlopsctl.tui.screens import ChooseScreen, ConfirmScreen, HelpScreen, ModelScreen

MODEL = "clf"
SIZE = (130, 40)
FIXED_NOW = 1_764_000_000 + 3 * 86400  # three days after the fixed registry's events


@pytest.fixture(scope="module")
def snaps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return prepared(tmp_path_factory)


@pytest.fixture
def staged(snaps: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return use(snaps, "staged", tmp_path, monkeypatch)


async def until(pilot: Any, cond: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        await pilot.pause(0.1)


def cell(app: MonitorApp, model: str, column: str) -> str:
    table = app.overview.table  # type: ignore[union-attr]
    return str(table.get_cell(model, column))


# --- keys ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_filter_sort_drill_down_back_help_and_quit(staged: Any) -> None:
    git(staged.repo, "tag", "-a", "-m", "by hand", "alpha@v2.0.0", "HEAD")
    app = MonitorApp(staged.repo, interval=None, scrape=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.overview.table  # type: ignore[union-attr]
        assert table.models_shown() == ["alpha", MODEL]
        assert cell(app, MODEL, "env:staging").startswith("v0.2.0 ")
        assert cell(app, MODEL, "validation") == "passed"
        assert cell(app, MODEL, "health") == "ok"
        await pilot.press("slash", "c", "l")
        assert table.models_shown() == [MODEL]
        await pilot.press("enter")  # keeps the filter, back to the table
        assert table.has_focus and table.models_shown() == [MODEL]
        await pilot.press("escape")
        assert table.models_shown() == ["alpha", MODEL]
        await pilot.press("s")  # sort by model
        assert table.sort_column == "model" and table.models_shown() == ["alpha", MODEL]
        await pilot.press("S")  # reversed
        assert table.models_shown() == [MODEL, "alpha"]
        await pilot.press("s")  # by latest version: v0.3.0 before v2.0.0
        assert table.sort_column == "latest" and table.models_shown() == [MODEL, "alpha"]
        await pilot.press("S")
        assert table.models_shown() == ["alpha", MODEL]
        table.move_cursor(row=table.models_shown().index(MODEL))
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ModelScreen) and app.screen.model == MODEL
        versions = app.screen.detail["versions"]
        assert [v["version"] for v in versions] == ["v0.1.0", "v0.2.0", "v0.3.0"]
        assert versions[1]["reported"]["accuracy"] > 0.9
        assert versions[1]["recomputed"]["accuracy"] > 0.9
        assert versions[1]["lineage"]["data"][0]["path"] == "data/train.csv"
        assert app.screen.detail["latest_reports"]["staging"]["version"] == "v0.3.0"
        assert len(app.screen.query(".metric-plot")) == len(app.screen.detail["metrics"][:4])
        await pilot.press("escape")
        assert not isinstance(app.screen, ModelScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
    assert app.return_code == 0 and not app.errors


@pytest.mark.asyncio
async def test_promote_and_rollback_with_confirmation(staged: Any) -> None:
    app = MonitorApp(staged.repo, interval=None, scrape=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("p")  # the latest, 0.3.0: which environment?
        assert isinstance(app.screen, ChooseScreen)
        assert app.screen.options == ["staging", "production"]
        await pilot.press("enter")  # the first: staging
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Promote clf v0.3.0 to staging?"
        await pilot.press("n")  # cancelled: nothing happens
        await pilot.pause(0.3)
        assert cell(app, MODEL, "env:staging").startswith("v0.2.0")
        await pilot.press("p", "enter", "y")
        await until(pilot, lambda: bool(app.notices or app.errors))
        assert not app.errors, app.errors
        await until(pilot, lambda: cell(app, MODEL, "env:staging").startswith("v0.3.0"))
        assert "promote" in cell(app, MODEL, "last")
        await pilot.press("b")  # only staging has anything live: straight to the question
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question.startswith("Roll back clf in staging to v0.2.0")
        await pilot.press("y")
        await until(pilot, lambda: len(app.notices) == 2 or bool(app.errors))
        assert not app.errors, app.errors
        await until(pilot, lambda: "↩" in cell(app, MODEL, "env:staging"))
        assert cell(app, MODEL, "env:staging").startswith("v0.2.0")
        assert cell(app, MODEL, "last").startswith("rollback")
    status = run("status", "--json")
    assert '"live": "v0.2.0"' in status.out and '"rollback": true' in status.out
    tags = git(staged.repo, "tag", "-l", "--format=%(contents)", f"{MODEL}#staging#*")
    assert "from mlopsctl monitor" in tags


@pytest.mark.asyncio
async def test_a_refused_action_is_shown_and_the_app_keeps_running(staged: Any) -> None:
    app = MonitorApp(staged.repo, interval=None, scrape=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("p", "down", "enter")  # 0.3.0 to production: staging comes first
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Promote clf v0.3.0 to production?"
        await pilot.press("y")
        await until(pilot, lambda: bool(app.errors))
        assert "has not been promoted to staging yet" in app.errors[-1]
        assert "hint: mlopsctl promote clf 0.3.0 --to staging" in app.errors[-1]
        assert "error:" in str(app.overview.query_one("#status").render())  # type: ignore
        await pilot.press("question_mark")  # still answering keys
        assert isinstance(app.screen, HelpScreen)


# --- live ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_version_registered_while_the_app_runs_appears(staged: Any) -> None:
    app = MonitorApp(staged.repo, interval=0.1, scrape=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.overview.table.models_shown() == [MODEL]  # type: ignore[union-attr]
        before = app.overview.table.updated_cells  # type: ignore[union-attr]
        result = run("bump", "fresh", "--artifact", "model.pkl", "-m", "while watching")
        assert result.code == 0, result.err
        await until(pilot, lambda: "fresh" in app.overview.table.cells, 20)  # type: ignore
        assert cell(app, "fresh", "latest") == "v0.1.0"
        assert cell(app, "fresh", "last").startswith("register")
        # only the new row was written: clf's cells were left alone
        written = app.overview.table.updated_cells - before  # type: ignore[union-attr]
        assert written == len(app.overview.table.column_keys)  # type: ignore[union-attr]
        audit = app.overview.query_one("#audit-log")  # type: ignore[union-attr]
        assert "fresh" in str(audit.get_row_at(0))  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_live_alerts_from_a_prometheus_endpoint(staged: Any) -> None:
    serve = ServeLike(MODEL, "0.2.0")
    with prometheus(serve.registry) as url:
        set_env(staged.repo, "staging", metrics_url=url)
        serve.traffic(ok=80, failed=20, seconds=0.001)
        app = MonitorApp(staged.repo, interval=0.1, scrape_every=0.2)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "emergency" in cell(app, MODEL, "alerts"), 20)
            alerts = app.overview.query_one("#alerts-table")  # type: ignore[union-attr]
            assert "error rate 20.0%" in str(alerts.get_row_at(0))  # type: ignore[attr-defined]
            await pilot.press("3")
            panel = app.overview.query_one("#live-panel")  # type: ignore[union-attr]
            assert "up" in str(panel.render()) and "errors 20.0%" in str(panel.render())


@pytest.mark.asyncio
async def test_source_going_down_mid_run(staged: Any) -> None:
    serve = ServeLike(MODEL, "0.2.0")
    serve.traffic(ok=50, failed=0, seconds=0.001)
    ctx = prometheus(serve.registry)
    url = ctx.__enter__()
    set_env(staged.repo, "staging", metrics_url=url)
    app = MonitorApp(staged.repo, interval=0.1, scrape_every=0.2)
    try:
        async with app.run_test(size=SIZE) as pilot:
            panel = app.overview.query_one("#live-panel")  # type: ignore[union-attr]
            await until(pilot, lambda: "up" in str(panel.render()), 20)
            ctx.__exit__(None, None, None)
            ctx = None  # type: ignore[assignment]
            await until(pilot, lambda: "DOWN" in str(panel.render()), 20)
            await until(pilot, lambda: "critical" in cell(app, MODEL, "alerts"), 20)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)


@pytest.mark.asyncio
async def test_a_hanging_source_never_freezes_the_app(staged: Any) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)  # accepts, never answers: each scrape waits for its full timeout
    try:
        set_env(staged.repo, "staging",
                metrics_url=f"http://127.0.0.1:{listener.getsockname()[1]}/metrics")
        app = MonitorApp(staged.repo, interval=0.1, scrape_every=0.1, scrape_timeout=30)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.3)
            assert app._scraping  # the first scrape hangs on its worker thread
            start = time.monotonic()
            await pilot.press("slash", "c", "enter", "question_mark")
            assert isinstance(app.screen, HelpScreen)
            assert app.overview.table.models_shown() == [MODEL]  # type: ignore[union-attr]
            assert time.monotonic() - start < 15  # well inside the scrape's 30 s
            assert app._scraping
            listener.close()  # resets the pending connection: the scrape ends, as down
            await until(pilot, lambda: not app._scraping, 20)
    finally:
        listener.close()


# --- snapshots -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three models with fixed dates (a fast-import stream), mlopsctl init on top."""
    base = tmp_path_factory.mktemp("fixed")
    with pytest.MonkeyPatch.context() as mp:
        from conftest import isolate

        isolate(mp, base / "home")
        (base / "home").mkdir()
        return fixed_registry(base / "registry", 3)


def fixed_app(root: Path) -> MonitorApp:
    return MonitorApp(root, interval=None, scrape=False, clock=lambda: FIXED_NOW)


def test_snapshot_overview(fixed: Path, snap_compare: Any) -> None:
    assert snap_compare(fixed_app(fixed), terminal_size=SIZE)


def test_snapshot_model_screen(fixed: Path, snap_compare: Any) -> None:
    assert snap_compare(fixed_app(fixed), press=["down", "enter"], terminal_size=SIZE)


def test_snapshot_help(fixed: Path, snap_compare: Any) -> None:
    assert snap_compare(fixed_app(fixed), press=["question_mark"], terminal_size=SIZE)


def test_snapshot_audit_log(fixed: Path, snap_compare: Any) -> None:
    assert snap_compare(fixed_app(fixed), press=["2"], terminal_size=SIZE)


@pytest.mark.asyncio
async def test_approve_from_the_model_screen(staged: Any) -> None:
    app = MonitorApp(staged.repo, interval=None, scrape=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("enter")  # clf's screen; its versions newest first: 0.3.0 selected
        assert isinstance(app.screen, ModelScreen)
        await pilot.press("a")
        assert isinstance(app.screen, ChooseScreen)
        await pilot.press("down", "enter")  # production
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == "Approve clf v0.3.0 for production?"
        await pilot.press("y")
        await until(pilot, lambda: bool(app.notices or app.errors))
        assert not app.errors, app.errors
    note = git(staged.repo, "notes", "--ref=refs/notes/mlops", "show", f"{MODEL}@v0.3.0^{{}}")
    assert "ada@example.com" in note and "from mlopsctl monitor" in note


@pytest.mark.asyncio
async def test_a_config_change_shows_without_restart(staged: Any) -> None:
    app = MonitorApp(staged.repo, interval=0.1, scrape=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.overview.table  # type: ignore[union-attr]
        assert table.envs == ["staging", "production"]
        set_env(staged.repo, "canary", requires=["staging"])
        await until(pilot, lambda: table.envs == ["staging", "production", "canary"], 20)
        assert cell(app, MODEL, "env:canary") == "-"
        assert cell(app, MODEL, "env:staging").startswith("v0.2.0")
