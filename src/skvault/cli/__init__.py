"""The ``skvault`` command line (optional extra: ``pip install skvault[cli]``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    try:
        from ._app import cli
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        if getattr(exc, "name", None) != "click":
            raise
        print(
            "the skvault command line needs click: install skvault[cli] for this", file=sys.stderr
        )
        return 2
    try:
        cli.main(args=argv, prog_name="skvault", standalone_mode=False)
    except SystemExit as exc:  # --help and --version exit through click
        return int(exc.code or 0)
    except _click_exception() as exc:
        exc.show()
        return int(exc.exit_code)
    return 0


def _click_exception() -> type[click.ClickException]:
    import click

    return click.ClickException
