"""``mlopsctl check-ref``."""

from __future__ import annotations

import click

from mlopsctl.cli import ci, console

_SHOWN = ("event", "model", "version", "stage", "counter", "actor", "date", "commit", "signed",
          "signature_ok", "signer", "rollback")


@click.command("check-ref")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def command(ref: str, as_json: bool) -> None:
    """Say what a pushed tag did: event, model, version, stage, actor, counter, signed or not.

    For CI jobs triggered by a tag push (in the spirit of `gto check-ref`). REF is a tag name
    or a full ref (refs/tags/...). Exits 2 for a ref that is not a registry event, so a job can
    tell "not ours" from "ours and bad". Under GitHub Actions the values also go to
    $GITHUB_OUTPUT (model, version, stage, event, ...) and a line to the job summary.

    \b
    Example:
      mlopsctl check-ref churn#production#3 --json
      mlopsctl check-ref "$GITHUB_REF"
      mlopsctl check-ref refs/tags/churn@v1.2.0
    """
    from mlopsctl.checks import describe_ref

    info = describe_ref(ref)
    if as_json:
        console.emit_json(info)
    else:
        for key in _SHOWN:
            value = info.get(key)
            if value is None or (key == "rollback" and not value):
                continue
            print(f"{key + ':':14}{str(value).lower() if isinstance(value, bool) else value}")
    if ci.github_actions():
        # `name` as well as `model`: the output names gto-action gives the same event
        outputs = {k: info.get(k) for k in ("event", "model", "version", "stage", "counter",
                                            "actor", "signed", "tag", "commit")}
        ci.set_outputs({**outputs, "name": info["model"]})
        where = f" to **{info['stage']}**" if info.get("stage") else ""
        ci.append_summary(f"### mlopsctl check-ref\n\n`{info['tag']}`: {info['event']} "
                          f"**{info['model']}** {info.get('version') or ''}{where} by "
                          f"{info['actor']} ({'signed' if info['signed'] else 'unsigned'})")
