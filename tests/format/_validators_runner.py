"""Run in a child process: load each ``.skv`` file given and report what happened, one per line.

Usage: ``python _validators_runner.py INPUTS.npz FILE...``. For each file prints a JSON line
``{"file", "outcome", "detail"}`` with outcome ``refused`` (a `FormatError`, with its rule),
``error`` (any other exception: a bug), or ``loaded`` with ``detail`` the predictions on the
``X`` array of INPUTS.npz (``decision_function`` when the model has it, else ``predict``). Lines
are flushed one by one, so a crash shows as a signal after the last file that completed.
"""

from __future__ import annotations

import json
import sys

import numpy as np

import skvault
from skvault.errors import FormatError


def main(argv: list[str]) -> None:
    X = np.load(argv[0])["X"]
    for name in argv[1:]:
        try:
            model = skvault.load(name)
        except FormatError as exc:
            line = {"file": name, "outcome": "refused", "detail": str(exc)}
        except Exception as exc:
            line = {"file": name, "outcome": "error", "detail": repr(exc)}
        else:
            try:
                method = getattr(model, "decision_function", None) or model.predict
                line = {"file": name, "outcome": "loaded", "detail": method(X).tolist()}
            except Exception as exc:  # a model that loads must also predict
                line = {"file": name, "outcome": "predict-error", "detail": repr(exc)}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
