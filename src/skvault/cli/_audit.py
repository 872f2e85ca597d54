"""``skvault audit FILE...``: what globals model files name, classified, without loading them."""

from __future__ import annotations

import json

import click

from ..legacy._audit import AuditReport, audit
from ._app import EXIT_FINDING, cli


@cli.command(name="audit")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@click.option(
    "--trust",
    "trusted",
    multiple=True,
    metavar="NAME",
    help="Accept this fully qualified name (module.name) too; repeat for more.",
)
def audit_command(files: tuple[str, ...], as_json: bool, trusted: tuple[str, ...]) -> None:
    """List every global FILE names (module, name, where), classified against the allow-list.

    FILE may be a pickle, a joblib file (plain or compressed), a .npy, skops or .skv file; the
    format is read from the content. Nothing in FILE is imported or run. Each name is safe (on
    the allow-list, or trusted with --trust), unknown (not on it) or dangerous (a known way to
    run code). Truncated or tampered streams are reported as problems. Exits with 0 only when
    every file is safe, 1 otherwise.
    """
    reports: list[AuditReport] = []
    errors: list[dict[str, object]] = []
    for file in files:
        try:
            reports.append(audit(file, trusted=list(trusted) or None))
        except OSError as exc:
            message = f"cannot read {file}: {exc.strerror or exc}"
            errors.append({"file": file, "safe": False, "error": message})
            if not as_json:
                click.echo(f"skvault: {message}", err=True)
        except TypeError as exc:  # a malformed --trust name
            raise click.BadParameter(str(exc), param_hint="--trust") from None
    safe = not errors and all(r.safe for r in reports)
    if as_json:
        doc = {
            "safe": safe,
            "files": [r.to_dict() for r in reports] + errors,
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        for report in reports:
            click.echo(str(report))
            click.echo("")
        unsafe = sum(not r.safe for r in reports) + len(errors)
        click.echo(
            f"{len(files)} file{'s' if len(files) != 1 else ''} audited: "
            f"{len(files) - unsafe} safe, {unsafe} not safe"
        )
    if not safe:
        raise SystemExit(EXIT_FINDING)
