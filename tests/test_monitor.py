"""`mlopsctl monitor` headless, and the service behind it: the dashboard document, exit codes,
alerts from a real Prometheus endpoint (and one that goes down), `--watch`, auto-rollback, and
the incremental refs reader against `git for-each-ref`.

The registry is built once per process with the real CLI (tests/monitor_fixtures.py) and copied
into each test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import git, run
from monitor_fixtures import ServeLike, edit_config, prepared, prometheus, set_env, use

from mlopsctl import livemetrics as lm
from mlopsctl import monitoring
from mlopsctl.gitops.refs import read_tags
from mlopsctl.gitops.refstate import RefsReader
from mlopsctl.project import Project

MODEL = "clf"


@pytest.fixture(scope="module")
def snaps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return prepared(tmp_path_factory)


@pytest.fixture
def staged(snaps: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return use(snaps, "staged", tmp_path, monkeypatch)


def once(*extra: str) -> tuple[int, dict[str, Any]]:
    result = run("monitor", "--once", "--json", *extra)
    assert result.code in (0, 1), result.err
    return result.code, json.loads(result.out)


# --- the document ------------------------------------------------------------------------------


def test_once_json_shows_registry_deployments_and_no_alerts(staged: Any) -> None:
    code, doc = once()
    assert code == 0, doc["alerts"]
    (row,) = doc["models"]
    assert row["model"] == MODEL and row["latest"] == "v0.3.0" and row["versions"] == 3
    staging = row["environments"]["staging"]
    assert staging["live"] == "v0.2.0" and staging["slot"] in ("blue", "green")
    assert "production" not in row["environments"]
    assert row["validation"] == {"staging": "passed"}
    assert row["health"] == "ok"
    assert 0.95 <= row["compliance"] <= 1.0
    assert row["last_event"]["event"] == "promote" and row["last_event"]["version"] == "v0.2.0"
    (dep,) = doc["deployments"]
    assert dep["in_sync"] and dep["healthy"] and dep["slots"][dep["live_slot"]] == "v0.2.0"
    assert dep["validation"]["status"] == "passed" and dep["validation"]["accuracy"] > 0.9
    assert doc["alerts"] == [] and doc["summary"]["worst"] is None
    assert doc["thresholds"] == {"warning": 0.05, "critical": 0.1, "emergency": 0.15}
    assert [e["event"] for e in doc["events"][:2]] == ["promote", "promote"]
    # the Python API's document is the same one
    api = monitoring.dashboard(Project.open())
    assert monitoring.stable(api) == monitoring.stable(doc)


def test_missed_target_exits_1_at_the_fail_on_level(staged: Any) -> None:
    edit_config(staged.repo, lambda d: d.setdefault("performance_targets", {}).update(
        model_accuracy=0.999))
    code, doc = once()
    assert code == 1
    (alert,) = doc["alerts"]
    assert alert["kind"] == "target" and alert["metric"] == "model_accuracy"
    assert alert["level"] == "critical" and alert["env"] == "staging"
    assert once("--fail-on", "emergency")[0] == 0
    assert once("--fail-on", "warning")[0] == 1
    human = run("monitor", "--once")
    assert human.code == 1 and "misses the 1.00 target" in human.out + human.err


def test_text_once_and_usage_errors(staged: Any) -> None:
    result = run("monitor", "--once")
    assert result.code == 0 and MODEL in result.out and "passed" in result.out
    assert run("monitor", "--once", "--watch").code == 2
    assert run("monitor", "--once", "--fail-on", "bad").code == 2


# --- live metrics ------------------------------------------------------------------------------


def test_alerts_from_a_real_prometheus_endpoint_and_a_source_going_down(staged: Any) -> None:
    serve = ServeLike(MODEL, "0.2.0")
    with prometheus(serve.registry) as url:
        set_env(staged.repo, "staging", metrics_url=url)
        monitor = monitoring.Monitor(Project.open())
        monitor.poll()
        serve.traffic(ok=88, failed=12, seconds=2.0)  # far above any validated p95
        serve.accuracy.labels(MODEL, "0.2.0").set(0.5)
        monitor.scrape()
        stats = monitor.live_stats(MODEL, "staging")
        assert stats is not None and stats.up
        assert stats.error_rate == pytest.approx(0.12)
        assert stats.latency_p50_ms == pytest.approx(1750)  # inside the (1 s, 2.5 s] bucket
        alerts = {(a.kind, a.metric): a for a in monitor.alerts()}
        assert alerts[("degradation", "error_rate")].level == "critical"  # 12 %: >= 10, < 15
        assert alerts[("degradation", "latency_p95_ms")].level == "emergency"
        acc = alerts[("degradation", "accuracy")]
        assert acc.level == "emergency" and acc.baseline is not None and acc.baseline > 0.9
        assert alerts[("target", "availability")].level == "critical"
        assert alerts[("target", "response_time_ms")].value == pytest.approx(2425)
        # a window with healthy traffic clears the error-rate alert
        serve.traffic(ok=100, failed=0, seconds=0.08)
        time.sleep(0.05)
        monitor.scrape()
        after = {(a.kind, a.metric) for a in monitor.alerts()}
        assert ("degradation", "error_rate") not in after
        assert monitor.live_stats(MODEL, "staging").request_rate > 0  # type: ignore[union-attr]
        code, doc = once()
        assert code == 1 and doc["live_metrics"]["staging"]["up"] is True
        assert doc["live_metrics"]["staging"]["models"][MODEL]["requests"] == 200
    monitor.scrape()  # the server is gone
    stats = monitor.live_stats(MODEL, "staging")
    assert stats is not None and not stats.up and stats.error
    (down,) = [a for a in monitor.alerts() if a.kind == "source"]
    assert down.level == "critical" and "down" in down.message
    code, doc = once()
    assert code == 1 and doc["live_metrics"]["staging"]["up"] is False


def test_a_hanging_source_costs_at_most_the_timeout(staged: Any) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections, never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/metrics"
        set_env(staged.repo, "staging", metrics_url=url)
        monitor = monitoring.Monitor(Project.open(), scrape_timeout=0.3)
        monitor.poll()
        start = time.perf_counter()
        monitor.scrape()
        assert time.perf_counter() - start < 2
        assert not monitor.live_stats(MODEL, "staging").up  # type: ignore[union-attr]
    finally:
        listener.close()


def test_auto_rollback_on_emergency_goes_through_rollback(staged: Any) -> None:
    serve = ServeLike(MODEL, "0.2.0")
    with prometheus(serve.registry) as url:
        set_env(staged.repo, "staging", metrics_url=url, auto_rollback=True)
        monitor = monitoring.Monitor(Project.open())
        monitor.poll()
        serve.accuracy.labels(MODEL, "0.2.0").set(0.4)
        serve.traffic(ok=10, failed=0, seconds=0.0005)
        monitor.scrape()
        (record,) = monitor.auto_rollback()
        assert record["ok"], record
        assert record["from"] == "v0.2.0" and record["to"] == "v0.1.0"
        assert monitor.auto_rollback() == []  # once per live version
    data = git(staged.repo, "tag", "-l", "--format=%(contents)", record["tag"])
    assert "rollback: true" in data and "auto-rollback: clf v0.2.0 in staging: accuracy" in data
    monitor.poll()
    assert monitor.rows[MODEL]["environments"]["staging"]["live"] == "v0.1.0"


def test_auto_rollback_is_off_unless_the_environment_allows_it(staged: Any) -> None:
    serve = ServeLike(MODEL, "0.2.0")
    with prometheus(serve.registry) as url:
        set_env(staged.repo, "staging", metrics_url=url)
        monitor = monitoring.Monitor(Project.open())
        monitor.poll()
        serve.accuracy.labels(MODEL, "0.2.0").set(0.4)
        monitor.scrape()
        assert any(a.level == "emergency" for a in monitor.alerts())
        assert monitor.auto_rollback() == []


# --- change detection --------------------------------------------------------------------------


def test_poll_picks_up_tags_notes_and_config_and_nothing_else(staged: Any) -> None:
    monitor = monitoring.Monitor(Project.open())
    assert monitor.poll().models == {MODEL}
    assert not monitor.poll()
    git(staged.repo, "tag", "-a", "-m", "by hand", "other@v1.0.0", "HEAD")
    changes = monitor.poll()
    assert changes.models == {"other"} and changes.events
    assert monitor.rows["other"]["latest"] == "v1.0.0"
    # HEAD is also clf 0.3.0's commit: its notes are clf's reports, not other's
    assert monitor.rows["other"]["validation"] == {}
    assert monitor.rows["other"]["compliance"] is None
    edit_config(staged.repo, lambda d: d.setdefault("performance_targets", {}).update(
        model_accuracy=0.999))
    changes = monitor.poll()
    assert changes.config and MODEL in changes.models
    assert any(a.metric == "model_accuracy" for a in monitor.alerts())
    git(staged.repo, "tag", "-d", "other@v1.0.0")
    assert monitor.poll().models == {"other"} and "other" not in monitor.rows
    validated = run("validate", f"{MODEL}@0.3.0", "--env", "production", "--latency-runs", "5")
    assert validated.code == 0, validated.err
    assert MODEL in monitor.poll().models  # a new note on 0.3.0's commit


def test_refs_reader_matches_for_each_ref(staged: Any) -> None:
    root = staged.repo
    reader = RefsReader(root, root / ".git")
    assert sorted(reader.records()) == sorted(read_tags(root))
    git(root, "tag", "light", "HEAD")  # lightweight
    git(root, "tag", "-a", "-m", "annotated\n\nbody", "x@v0.0.1", "HEAD")
    git(root, "tag", "-a", "-m", "tag of a tree", "tree-tag", "HEAD^{tree}")
    changed = reader.update()
    assert changed == {"light", "x@v0.0.1", "tree-tag"}
    assert sorted(reader.all()) == sorted(read_tags(root))
    git(root, "pack-refs", "--all")
    assert reader.update() == set()
    git(root, "tag", "-f", "-a", "-m", "moved", "x@v0.0.1", "HEAD~1")
    git(root, "tag", "-d", "light")
    assert reader.update() == {"x@v0.0.1", "light"}
    assert sorted(reader.all()) == sorted(read_tags(root))


def test_a_monitor_started_from_the_tag_index_folds_a_deprecation_as_gto(staged: Any) -> None:
    """The monitor's first read takes the tag index's records, which carry commit dates only
    where a fold needs them; when a deprecation arrives, the model needs them all (GTO compares
    the deprecation with every version's commit date) and the monitor reads them."""
    from mlopsctl import registry as reg

    root = staged.repo

    def dated(when: int, *args: str) -> None:
        stamp = f"{when} +0000"
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True,
                       env={**os.environ, "GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_DATE": stamp})

    # a version whose commit is newer than its (backdated) registration tag
    dated(4_000_000_000, "commit", "-q", "--allow-empty", "-m", "from the future")
    dated(1_500_000_000, "tag", "-a", "-m", "registered long ago", f"{MODEL}@v9.0.0", "HEAD")
    monitor = monitoring.Monitor(Project.open())
    monitor.poll()  # seeded from the tag index: no commit dates needed yet
    dated(3_000_000_000, "tag", "-a", "-m", "deprecated", f"{MODEL}@deprecated", "HEAD")
    assert MODEL in monitor.poll().models
    truth = reg.load_uncached(root).model(MODEL)
    assert truth is not None and not truth.deprecated  # the newer commit outranks it
    assert monitor.states[MODEL].deprecated == truth.deprecated
    assert [e.tag for e in monitor.states[MODEL].events] == [e.tag for e in truth.events]


def test_watch_writes_a_line_per_change(staged: Any) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "mlopsctl", "monitor", "--watch",
                             "--interval", "0.1", "--no-scrape"], cwd=staged.repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert [r["model"] for r in first["models"]] == [MODEL]
        git(staged.repo, "tag", "-a", "-m", "by hand", "other@v1.0.0", "HEAD")
        second = json.loads(proc.stdout.readline())
        assert sorted(r["model"] for r in second["models"]) == [MODEL, "other"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_watch_is_quiet_while_nothing_changes(staged: Any) -> None:
    monitor = monitoring.Monitor(Project.open())
    beats = []

    def sleep(_: float) -> None:
        beats.append(1)
        if len(beats) == 3:
            git(staged.repo, "tag", "-a", "-m", "by hand", "other@v1.0.0", "HEAD")

    docs = list(monitoring.watch(monitor, 0, sleep=sleep, stop=lambda: len(beats) >= 6))
    assert len(docs) == 2 and len(docs[1]["models"]) == 2


# --- pure parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "level"), [
    (0.0, None), (0.049, None), (0.05, "warning"), (0.099, "warning"), (0.10, "critical"),
    (0.1499, "critical"), (0.15, "emergency"), (3.0, "emergency"), (-0.5, None)])
def test_degradation_levels(change: float, level: str | None) -> None:
    hit = monitoring.degradation_level(change, [0.05, 0.10, 0.15])
    assert (hit[0] if hit else None) == level


def test_degradation_compares_with_the_validated_baseline() -> None:
    base = monitoring.Baseline(status="passed", accuracy=0.9, latency_p95_ms=10.0)
    live = lm.LiveStats(up=True, at=0, accuracy=0.85, latency_p95_ms=10.4, error_rate=0.0)
    (acc,) = monitoring.degradation_alerts("m", "prod", "v1", base, live, [0.05, 0.1, 0.15])
    assert acc.metric == "accuracy" and acc.level == "warning"  # 5.6 % below 0.9
    assert monitoring.degradation_alerts("m", "prod", "v1", base, None, [0.05]) == []


def test_prometheus_text_windows_and_quantiles() -> None:
    text = """# TYPE mlopsctl_serve_requests counter
mlopsctl_serve_requests_total{model="m",version="1.0.0",code="200"} 90
mlopsctl_serve_requests_total{model="m",version="1.0.0",code="500"} 10
# TYPE mlopsctl_serve_request_seconds histogram
mlopsctl_serve_request_seconds_bucket{model="m",version="1.0.0",le="0.01"} 50
mlopsctl_serve_request_seconds_bucket{model="m",version="1.0.0",le="0.02"} 100
mlopsctl_serve_request_seconds_bucket{model="m",version="1.0.0",le="+Inf"} 100
mlopsctl_serve_request_seconds_count{model="m",version="1.0.0"} 100
mlopsctl_serve_request_seconds_sum{model="m",version="1.0.0"} 1.2
"""
    counters = lm.parse(text)
    assert counters["m"].requests == 100 and counters["m"].errors == 10  # from the codes
    assert set(counters) == {"m", "m@1.0.0"}
    stats = lm.derive(lm.Scrape("u", 10.0, True, None, counters), None, "m")
    assert stats.error_rate == pytest.approx(0.1)
    assert stats.latency_p50_ms == pytest.approx(10.0)
    assert stats.latency_p95_ms == pytest.approx(19.0)
    later = lm.parse(text.replace(" 90\n", " 190\n"))
    window = lm.derive(lm.Scrape("u", 20.0, True, None, later),
                       lm.Scrape("u", 10.0, True, None, counters), "m")
    assert window.request_rate == pytest.approx(10.0) and window.error_rate == 0.0
    with pytest.raises(ValueError):
        lm.parse("this is { not prometheus")
