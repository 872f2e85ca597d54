"""``skvault diff A B``: what differs between two artifacts; exit 0 when nothing does."""

from __future__ import annotations

import json

import click

from ..provenance._diff import ArtifactDiff
from ..provenance._diff import diff as diff_files
from ._app import EXIT_FINDING, Failure, cli, reports_errors

# as diff(1): 0 the same, 1 different, 2 trouble (an unreadable or malformed file, bad usage)
EXIT_TROUBLE = 2


@cli.command()
@click.argument("a", type=click.Path(dir_okay=False))
@click.argument("b", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
def diff(a: str, b: str, as_json: bool) -> None:
    """Show what differs between artifacts A and B, without loading either model.

    Compared: the model's type and hyper-parameters, the input and output schema, the scores,
    the environment (Python, platform, package versions), the training data reference, the
    source and the description, tags and metrics. Exits with 0 when they are the same, 1 when
    they differ and 2 when a file cannot be read, as diff(1) does.
    """
    try:
        result = _compare(a, b)
    except Failure as exc:
        raise Failure(exc.format_message(), EXIT_TROUBLE) from None
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(str(result))
    if not result.identical:
        raise SystemExit(EXIT_FINDING)


@reports_errors
def _compare(a: str, b: str) -> ArtifactDiff:
    return diff_files(a, b)
