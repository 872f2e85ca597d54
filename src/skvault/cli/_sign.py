"""``skvault keygen`` and ``skvault sign``: Ed25519 signatures over artifacts."""

from __future__ import annotations

import click

from ..format._signing import keygen as make_keys
from ..format._signing import sign as sign_file
from ._app import Failure, cli, reports_errors


@cli.command()
@click.argument("key", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace existing key files.")
@reports_errors
def keygen(key: str, force: bool) -> None:
    """Create an Ed25519 key pair: KEY (private, mode 0600) and KEY.pub (public).

    Sign artifacts with KEY (skvault sign FILE --key KEY); give KEY.pub to whoever loads them
    (skvault verify FILE --public-key KEY.pub, or load(..., require_signature=...)).
    """
    try:
        private, public = make_keys(key, overwrite=force)
    except FileExistsError as exc:
        raise Failure(f"{exc} (use --force)") from None
    click.echo(f"private key: {private}\npublic key:  {public}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--key",
    "key",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="Private key file written by skvault keygen.",
)
@reports_errors
def sign(file: str, key: str) -> None:
    """Sign the artifact FILE in place with the private KEY (replaces an earlier signature).

    The file is checked first (structure and every member's digest); only an intact file is
    signed.
    """
    key_id = sign_file(file, key)
    click.echo(f"{file}: signed by key {key_id}")
