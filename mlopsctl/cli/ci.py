"""Output for CI runners: GitHub Actions workflow commands, the job summary and step outputs,
and GitLab's Code Quality report. Only command modules use it (services never print)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, file: str | None = None, line: int | None = None,
               title: str | None = None) -> str:
    """One workflow command, e.g. ``::error file=a.yaml,line=3,title=schema::bad field``."""
    props = []
    if file:
        props.append(f"file={_escape_property(file)}")
        if line:
            props.append(f"line={line}")
    if title:
        props.append(f"title={_escape_property(title)}")
    head = f"::{level} {','.join(props)}" if props else f"::{level}"
    return f"{head}::{_escape_data(message)}"


def annotate(findings: Sequence[Mapping[str, Any]], to_stderr: bool = False) -> None:
    """Print an ``::error`` line per finding (GitHub turns them into annotations on the diff).
    The runner reads workflow commands from both streams: with ``to_stderr``, stdout stays a
    clean JSON document."""
    stream = sys.stderr if to_stderr else sys.stdout
    for f in findings:
        text = f["message"] + (f" (hint: {f['hint']})" if f.get("hint") else "")
        print(annotation("error", text, f.get("file"), f.get("line"),
                         f"mlopsctl {f.get('check', 'check')}"), file=stream)
    stream.flush()


def append_summary(markdown: str) -> None:
    """Append to the job summary ($GITHUB_STEP_SUMMARY), when the runner provides one."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(markdown.rstrip("\n") + "\n\n")


def set_outputs(values: Mapping[str, object]) -> None:
    """Append ``name=value`` lines to $GITHUB_OUTPUT (values kept to one line)."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        for name, value in values.items():
            text = "" if value is None else str(value).lower() if isinstance(value, bool) \
                else str(value)
            fh.write(f"{name}={' '.join(text.splitlines())}\n")


def _cell(text: object) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def findings_markdown(title: str, findings: Sequence[Mapping[str, Any]], ok_line: str) -> str:
    if not findings:
        return f"### {title}\n\n:white_check_mark: {ok_line}"
    rows = [f"### {title}", "", f":x: {len(findings)} finding(s)", "",
            "| where | check | finding | hint |", "|---|---|---|---|"]
    for f in findings:
        where = (f.get("file") or "") + (f":{f['line']}" if f.get("line") else "")
        rows.append(f"| {_cell(where) or '—'} | {_cell(f.get('check'))} | "
                    f"{_cell(f['message'])} | {_cell(f.get('hint'))} |")
    return "\n".join(rows)


def write_codequality(path: Path, findings: Sequence[Mapping[str, Any]]) -> None:
    """GitLab's Code Quality report (a JSON list; `artifacts: reports: codequality:`)."""
    issues = []
    for f in findings:
        where = f.get("file") or ".mlops/config.yaml"
        digest = hashlib.sha256(f"{f.get('check')}|{where}|{f['message']}".encode()).hexdigest()
        issues.append({
            "description": f["message"], "check_name": f"mlopsctl-{f.get('check', 'check')}",
            "fingerprint": digest, "severity": "major",
            "location": {"path": where, "lines": {"begin": f.get("line") or 1}},
        })
    from mlopsctl.fsio import atomic_write

    atomic_write(path, (json.dumps(issues, indent=2) + "\n").encode(), durable=False)
