"""The main job, end to end: train, save as .skv, load in a fresh process, show the summary.

Run it with ``bash run.sh demo``. It writes ``demo-output/model.skv``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skvault

OUT = Path(__file__).resolve().parents[1] / "demo-output"

LOAD_IN_FRESH_PROCESS = """
import sys
import numpy as np
import skvault
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

model = skvault.load(sys.argv[1])
X, y = load_breast_cancer(return_X_y=True)
_, X_test, _, y_test = train_test_split(X, y, random_state=0)
expected = np.load(sys.argv[2])
same = np.array_equal(model.predict_proba(X_test), expected)
print(f"fresh process: loaded {type(model).__name__}, test accuracy "
      f"{model.score(X_test, y_test):.3f}, predictions identical to training process: {same}")
sys.exit(0 if same else 1)
"""


def main() -> int:
    OUT.mkdir(exist_ok=True)
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    model = make_pipeline(StandardScaler(), HistGradientBoostingClassifier(random_state=0))
    model.fit(X_train, y_train)
    print(f"trained {model}, test accuracy {model.score(X_test, y_test):.3f}")

    path = OUT / "model.skv"
    skvault.dump(model, path)
    print(f"saved {path.name} ({path.stat().st_size:,} bytes)")

    import numpy as np

    np.save(OUT / "expected.npy", model.predict_proba(X_test))
    check = subprocess.run(
        [sys.executable, "-c", LOAD_IN_FRESH_PROCESS, str(path), str(OUT / "expected.npy")]
    )
    print("\n$ skvault inspect model.skv")
    shown = subprocess.run([sys.executable, "-m", "skvault", "inspect", str(path)])
    return check.returncode or shown.returncode


if __name__ == "__main__":
    sys.exit(main())
