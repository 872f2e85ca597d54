"""``skvault verify FILE``: check an artifact end to end; exit 0 when every check passes."""

from __future__ import annotations

import json

import click

from ..provenance._verify import verify as verify_file
from ._app import EXIT_FINDING, cli, reports_errors


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--data",
    metavar="PATH",
    type=click.Path(),
    default=None,
    help="A copy of the training data: checked against the recorded digest, then used to re-run "
    "the recorded cross-validation (.npz with X and y, .npy, .csv, .tsv, .parquet).",
)
@click.option(
    "--trust",
    "trusted",
    multiple=True,
    metavar="NAME",
    help="A type to trust when building the model (repeatable), as load(trusted=...).",
)
@click.option(
    "--public-key",
    metavar="KEY",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Require a valid signature by this public key (KEY.pub from skvault keygen).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@reports_errors
def verify(
    file: str, data: str | None, trusted: tuple[str, ...], public_key: str | None, as_json: bool
) -> None:
    """Check FILE: integrity, signature, environment, loading, golden sample, data and scores.

    Every member's digest is checked; with --public-key, FILE must be signed by that key; the
    recorded versions are compared with the running
    ones; the model is built with default trust and its golden sample recomputed; the training
    data (--data, or the recorded path when it still exists) is compared with its recorded
    digest and, when it matches, the recorded cross-validation is run again and each mean must
    lie within the recorded mean +/- max(3 std, 1e-6 + 1e-6 |mean|). Exits with 0 when no
    check failed (skipped checks do not fail), 1 otherwise.
    """
    # options map one to one onto verify()'s keywords: a new check's option is one more here
    report = verify_file(file, data=data, trusted=list(trusted) or None, public_key=public_key)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(str(report))
    if not report.ok:
        first = report.failed[0]
        reason = first.message.splitlines()[0] if first.message else ""
        names = ", ".join(check.name for check in report.failed)
        click.echo(f"skvault: {file} failed verification ({names}): {reason}", err=True)
        raise SystemExit(EXIT_FINDING)
