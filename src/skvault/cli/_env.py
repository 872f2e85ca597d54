"""``skvault env FILE``: rebuild, compare or recreate the environment a model was trained in."""

from __future__ import annotations

from pathlib import Path

import click

from ..provenance._replicate import (
    FORMATS,
    INSTALLERS,
    Difference,
    check,
    create,
    read_environment_metadata,
    render,
)
from ._app import EXIT_FINDING, Failure, cli, reports_errors


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Print the pins as requirements.txt (default), pylock.toml, conda environment.yml or "
    "pixi.toml.",
)
@click.option(
    "--full",
    is_flag=True,
    help="Everything that was installed, not only what the model needs.",
)
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Compare with the running environment; exit 1 when Python or a package the model uses "
    "differs.",
)
@click.option(
    "--create",
    "create_dir",
    metavar="DIR",
    type=click.Path(file_okay=False),
    default=None,
    help="Create a virtual environment in DIR with the pins and skvault, and load FILE in it.",
)
@click.option(
    "--installer",
    type=click.Choice(INSTALLERS),
    default="auto",
    show_default=True,
    help="With --create: uv, or venv and pip; auto picks uv when it is installed.",
)
@click.option(
    "--trust",
    "trusted",
    multiple=True,
    metavar="NAME",
    help="With --create: a type to trust when loading FILE (repeatable), as load(trusted=...).",
)
@reports_errors
def env(
    file: str,
    fmt: str | None,
    full: bool,
    check_only: bool,
    create_dir: str | None,
    installer: str,
    trusted: tuple[str, ...],
) -> None:
    """Print pinned requirements that rebuild the environment FILE was trained in.

    By default, the packages the model uses and their dependencies, each pinned to its recorded
    version (or its recorded source, for direct-URL and editable installs); --full pins
    everything that was installed. --check compares with the running environment instead, and
    --create DIR builds a virtual environment and checks that FILE loads in it.
    """
    if check_only and create_dir is not None:
        raise click.UsageError("--check and --create do different things: give one of them")
    if fmt is not None and (check_only or create_dir is not None):
        raise click.UsageError("--format chooses what to print: it goes without --check/--create")
    if create_dir is None and (installer != "auto" or trusted):
        raise click.UsageError("--installer and --trust only apply with --create")
    name = Path(file).name
    if create_dir is not None:
        _create(file, create_dir, full, installer, trusted)
        return
    meta = read_environment_metadata(file)
    if check_only:
        differences = check(meta, full=full)
        click.echo("\n".join(render_differences(differences, name, full)))
        if any(d.matters for d in differences):
            raise SystemExit(EXIT_FINDING)
        return
    click.echo(render(meta, fmt or "requirements", full=full, name=name), nl=False)


def render_differences(differences: list[Difference], name: str, full: bool) -> list[str]:
    """Return the ``--check`` report: a table of what differs and a verdict."""
    scope = "everything installed" if full else "Python and the packages the model needs"
    if not differences:
        return [f"{name}: the running environment matches the recorded one ({scope})"]

    def show(version: str | None) -> str:
        return "-" if version is None else version

    rows = [("package", "recorded", "current", "matters")]
    rows += [
        (d.name, show(d.recorded), show(d.current), "yes" if d.matters else "") for d in differences
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{name}: {len(differences)} differences from the recorded environment ({scope})"]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, [*widths, 0])).rstrip()
        for row in rows
    ]
    if any(d.recorded is None or d.current is None for d in differences):
        lines.append("(- : not installed)")
    mattering = [d.name for d in differences if d.matters]
    if mattering:
        lines.append(
            f"{len(mattering)} of them matter (Python, or a package the model uses): "
            "the model may load differently or compute other results here."
        )
        lines.append(f"Rebuild the training environment: skvault env {name} --create DIR")
    else:
        lines.append("none of them is Python or a package the model uses")
    return lines


def _create(
    file: str, directory: str, full: bool, installer: str, trusted: tuple[str, ...]
) -> None:
    result = create(
        file, directory, full=full, installer=installer, trusted=trusted, log=click.echo
    )
    for note in result.notes:
        click.echo(f"note: {note}")
    if not result.ok:
        if result.output:
            click.echo(result.output, err=True)
        raise Failure(result.message)
    click.echo(f"ok: {result.message}")
    click.echo(f"python: {result.python}")
