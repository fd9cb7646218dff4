"""What the read commands print for people and for scripts: tables without `None`, every metric,
history newest first (as README and `gto history` have it), `--details` honoured, JSON errors
under `--json`, one unit system for sizes, `--traceback` documented, a short out-of-sync line."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import pytest
from conftest import git, run, write

from mlopsctl.cli import console


def ok(*args: str | Path) -> str:
    result = run(*args)
    assert result.code == 0, f"mlopsctl {args}: {result.err}"
    return result.out


def table_lines(out: str, needle: str) -> list[int]:
    return [i for i, line in enumerate(out.splitlines()) if needle in line]


@pytest.fixture
def bumped(registry: Path) -> Path:
    """churn v0.1.0 registered by mlopsctl with five metrics; another model holds 'prod', so
    churn's prod column is unset."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    write(registry / "model.pkl", pickle.dumps(LogisticRegression(max_iter=300).fit(x, y)))
    write(registry / "metrics.json", json.dumps(
        {"accuracy": 0.91, "precision": 0.92, "recall": 0.93, "f1": 0.94, "roc_auc": 0.95}))
    ok("bump", "churn", "--artifact", "model.pkl", "--metrics", "metrics.json")
    git(registry, "tag", "-a", "other@v1.0.0", "-m", "by hand")
    git(registry, "tag", "-a", "other#prod#1", "-m", "by hand")
    return registry


def test_show_prints_a_dash_for_an_unset_stage(bumped: Path) -> None:
    out = ok("show")
    assert "None" not in out
    (churn,) = [line for line in out.splitlines() if line.strip().startswith("churn")]
    assert churn.split()[-1] == "-"  # prod
    assert json.loads(ok("show", "--json"))["churn"]["stage"] == {"prod": None}  # JSON keeps null


def test_show_model_lists_every_metric(bumped: Path) -> None:
    out = ok("show", "churn")
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        assert f"{name}=" in out, out


# --- history ------------------------------------------------------------------------------------


@pytest.fixture
def events(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three events a minute apart, the last one with mlopsctl's structured record."""
    for minute, tag, message in [
        ("00", "churn@v0.1.0", "first"),
        ("01", "churn@v0.2.0", "second"),
        ("02", "churn#production#3", "Promote churn v0.2.0 to production\n\nmlopsctl:\n"
         "  schema_version: 1\n  event: promotion\n  actor: Ada <ada@example.com>\n"
         "  slot: green\n  policy_hash: 0123456789abcdef\n  previous_version: 0.1.0\n"),
    ]:
        monkeypatch.setenv("GIT_COMMITTER_DATE", f"2024-05-01T10:{minute}:00+0000")
        git(repo, "tag", "-a", tag, "-m", message)
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    return repo


def test_human_history_is_newest_first_like_json_and_the_readme(events: Path) -> None:
    out = ok("history")
    order = [table_lines(out, f"10:0{m}")[0] for m in (2, 1, 0)]
    assert order == sorted(order), out  # 10:02 above 10:01 above 10:00
    first_json = json.loads(ok("history", "--json"))[0]
    assert first_json["ref"] == "churn#production#3"
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "newest first" in readme.split("`history [MODEL]", 1)[1].split("\n", 1)[0]
    assert "newest last" not in run("--help").out


def test_history_details_without_json_is_honoured(events: Path) -> None:
    plain, detailed = ok("history", "churn"), ok("history", "churn", "--details")
    assert "slot=green" not in plain
    assert "details" in detailed and "slot=green" in detailed
    assert "policy_hash=0123456789abcdef" in detailed
    assert "actor=" not in detailed  # already in the 'who' column


# --- errors under --json, status ----------------------------------------------------------------


def test_an_error_under_json_is_a_json_object_on_stdout(events: Path) -> None:
    result = run("show", "nosuch", "--json")
    assert result.code == 2
    assert json.loads(result.out) == {"error": "unknown model 'nosuch'", "hint": "mlopsctl show",
                                      "exit_code": 2}
    assert "error: unknown model" in result.err  # people still read stderr
    usage = run("history", "--bogus", "--json")
    assert usage.code == 2 and json.loads(usage.out)["exit_code"] == 2
    assert run("show", "nosuch").out == ""  # without --json, stdout stays empty


def test_an_environment_error_under_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # not a git repository
    result = run("status", "--json")
    assert result.code == 3
    doc = json.loads(result.out)
    assert doc["exit_code"] == 3 and "not inside a git repository" in doc["error"]
    assert doc["hint"]


def test_status_of_an_unknown_environment_exits_2_like_promote(registry: Path) -> None:
    status, promote = run("status", "--env", "prod"), run("promote", "churn", "--to", "prod")
    assert status.code == 2 and promote.code == 2, (status, promote)
    assert "unknown environment 'prod'" in status.err
    assert json.loads(run("status", "--env", "prod", "--json").out)["exit_code"] == 2


def test_many_out_of_sync_targets_make_a_short_error() -> None:
    from mlopsctl.cli.cmd_status import out_of_sync

    bad = [f"model-{i:04d} production" for i in range(1000)]
    exc = out_of_sync(bad)
    assert len(exc.message) < 200, exc.message  # the old line was ~20,000 characters
    assert exc.message.startswith("1000 target(s) out of sync: model-0000 production")
    assert "and 995 more" in exc.message
    assert "table" in (exc.hint or "") and "mlopsctl sync" in (exc.hint or "")
    assert out_of_sync(bad[:2]).message == ("2 target(s) out of sync: model-0000 production, "
                                            "model-0001 production")


# --- help, sizes --------------------------------------------------------------------------------


def test_traceback_option_is_in_the_help() -> None:
    assert "--traceback" in run("--help").out


def test_progress_and_tables_use_one_unit_system() -> None:
    from rich.console import Console
    from rich.progress import Progress

    progress = Progress(*console.progress_columns(), auto_refresh=False)
    task = progress.add_task("fetch", total=300 << 20)
    progress.update(task, completed=150 << 20)
    buffer = io.StringIO()
    Console(file=buffer, width=200).print(progress.make_tasks_table(progress.tasks))
    text = buffer.getvalue()
    assert "MiB" in text and " MB" not in text, text
    assert console.human_size(150 << 20) == "150.0 MiB"


def test_a_long_table_prints_plain_aligned_rows() -> None:
    """Beyond LARGE_TABLE rows rich would measure every cell (a second per thousand rows):
    the rows come out as plain aligned columns, markup removed, nothing cut."""
    from rich.console import Console

    def render(rows: int) -> str:
        t = console.table("model", "state")
        for i in range(rows):
            t.add_row(f"m{i}", "[red]OUT OF SYNC[/]" if i == 3 else "in sync — ok")
        buffer = io.StringIO()
        Console(file=buffer, width=60, highlight=False, soft_wrap=True).print(t)
        return buffer.getvalue()

    long = render(console.LARGE_TABLE + 1).splitlines()
    assert long[0].split() == ["model", "state"]
    assert long[1] == "───── ────────────"
    assert long[3 + 2] == "m3    OUT OF SYNC"
    assert long[-1] == f"{'m' + str(console.LARGE_TABLE):<5} in sync — ok"
    assert len(long) == console.LARGE_TABLE + 3
    assert "OUT OF SYNC" in render(5) and "[red]" not in render(5)
