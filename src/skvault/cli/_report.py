"""``skvault report FILE``: a self-contained HTML model card."""

from __future__ import annotations

import click

from ..provenance._report import check_output_folder, write_report
from ..provenance._report import report as build_report
from ._app import Failure, cli, reports_errors


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    metavar="PATH",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the card to PATH (atomically) instead of printing it.",
)
@reports_errors
def report(file: str, output: str | None) -> None:
    """Write an HTML model card for FILE: provenance, environment, schema, scores and weights.

    The page is a single file with no script and no external resource. The metadata is read
    without building the model; the model is built with the default trust only to chart its
    feature importances or coefficients, and the card says so when its types are not trusted.
    """
    if output is None:
        click.echo(build_report(file), nl=False)
        return
    try:
        check_output_folder(output)  # before reading, which may take long for a large model
    except OSError as exc:
        raise _cannot_write(output, exc) from None
    page = build_report(file)
    try:
        write_report(page, output)
    except OSError as exc:
        raise _cannot_write(output, exc) from None
    click.echo(f"wrote {output}", err=True)


def _cannot_write(output: str, exc: OSError) -> Failure:
    # reports_errors would call any OSError a read error: here the card is what failed
    return Failure(f"cannot write {output}: {exc.strerror or exc}")
