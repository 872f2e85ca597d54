"""``skvault convert IN OUT.skv``: a pickle, joblib or skops file to a ``.skv`` artifact."""

from __future__ import annotations

import click

from ..legacy._convert import convert as convert_file
from ._app import cli, reports_errors

_METHODS = ("zlib", "lzma")


def _compression(value: str | None) -> object:
    """``zlib``, ``lzma``, ``METHOD:LEVEL`` or a zlib level ``0``-``9`` into dump's argument."""
    if value is None or value == "none":
        return None
    method, _, level = value.partition(":")
    if not level and method.isdigit():
        method, level = "zlib", method
    if method not in _METHODS or (level and not (level.isdigit() and int(level) <= 9)):
        raise click.BadParameter(
            "expected zlib, lzma or none, optionally with a level 0-9 (zlib:6)",
            param_hint="--compress",
        )
    return (method, int(level)) if level else method


@cli.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.argument("destination", type=click.Path(dir_okay=False))
@click.option(
    "--trust",
    "trusted",
    multiple=True,
    metavar="NAME",
    help="Accept this module.name beyond the allow-list (repeatable); never a dangerous name.",
)
@click.option(
    "--compress",
    metavar="METHOD[:LEVEL]",
    help="Compress the artifact's members: zlib or lzma, optionally with a level (zlib:6).",
)
@reports_errors
def convert(source: str, destination: str, trusted: tuple[str, ...], compress: str | None) -> None:
    """Convert SOURCE (pickle, joblib or skops) to the .skv artifact DESTINATION.

    SOURCE is read by skvault's restricted unpickler: only allow-listed names are resolved
    and nothing from the file is run. The artifact records the source's format, SHA-256 and
    name (skvault inspect shows it). Exits with 1, writing nothing, when SOURCE references
    names that are not trusted (they are listed) or is malformed.
    """
    method = _compression(compress)
    report = convert_file(source, destination, trusted=list(trusted) or None, compress=method)
    click.echo(
        f"converted {source} ({report['format']}, {report['size']:,} bytes, "
        f"sha256 {report['sha256']}) to {destination}"
    )
    if report["trusted"]:
        click.echo("trusted beyond the allow-list: " + ", ".join(report["trusted"]))
