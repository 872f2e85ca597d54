"""The command group, and the one place that turns skvault's errors into exit codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .._version import __version__
from ..errors import FormatError, SkvaultError, UnsupportedTypeError, UntrustedTypeError
from ..format._files import is_output_error

F = TypeVar("F", bound=Callable[..., Any])

# exit codes: 0 success, 1 the file is bad or not trusted (a finding), 2 usage errors (click)
EXIT_FINDING = 1


class Failure(click.ClickException):
    """An error reported as ``skvault: message`` with an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FINDING) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # (click types it as a ClassVar)

    def show(self, file: Any = None) -> None:
        click.echo(f"skvault: {self.format_message()}", err=True)


def reports_errors(fn: F) -> F:
    """Turn skvault's exceptions (and unreadable files) into a message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UntrustedTypeError as exc:
            raise Failure(str(exc)) from None
        except (FormatError, UnsupportedTypeError, SkvaultError) as exc:
            raise Failure(f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:
            verb = "write" if is_output_error(exc) else "read"
            raise Failure(
                f"cannot {verb} {exc.filename or 'the file'}: {exc.strerror or exc}"
            ) from None

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="skvault")
def cli() -> None:
    """skvault: safe, fast, reproducible persistence for scikit-learn models."""


from . import _audit, _convert, _diff, _env, _inspect, _report, _sign, _verify  # noqa: E402,F401  (register the commands on the group)
