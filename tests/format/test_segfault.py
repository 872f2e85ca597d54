"""The threat that state validation removes, shown in child processes.

A decision tree whose root links to node 10**9 is a valid pickle state for scikit-learn:
``Tree.__setstate__`` accepts it and the next ``predict`` reads 64 GB past the node array, which
kills the process with a signal. The same state inside a ``.skv`` file (with correct digests)
must end in a clean `InvalidStateError` instead. Each scenario runs in its own interpreter so a
crash is observed as a signal, not as the test runner dying.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from _validators_skv import Skv
from sklearn.datasets import make_classification
from sklearn.tree import DecisionTreeClassifier

import skvault

HUGE = 10**9
# the same data and tree in this process and in the children
FIT = """
from sklearn.datasets import make_classification
from sklearn.tree import DecisionTreeClassifier
X, y = make_classification(200, 5, n_informative=3, random_state=0)
model = DecisionTreeClassifier(random_state=0).fit(X, y)
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_plain_sklearn_crashes_on_the_hostile_tree_state() -> None:
    # documents the threat: no skvault involved, only Tree.__setstate__ and predict
    result = _run(
        FIT
        + f"""
import numpy as np
from sklearn.tree._tree import Tree
n_features, n_classes, n_outputs = model.tree_.__reduce__()[1]
state = model.tree_.__getstate__()
nodes = state["nodes"].copy()
nodes["left_child"][0] = nodes["right_child"][0] = {HUGE}
state["nodes"] = nodes
tree = Tree(n_features, n_classes, n_outputs)
tree.__setstate__(state)  # accepted without complaint
model.tree_ = tree
model.predict(X)
print("survived")
"""
    )
    assert result.returncode < 0, (result.returncode, result.stdout, result.stderr)
    assert -result.returncode in (signal.SIGSEGV, signal.SIGBUS), result.returncode
    assert "survived" not in result.stdout


def test_skvault_refuses_the_same_state_cleanly(tmp_path: Path) -> None:
    X, y = make_classification(200, 5, n_informative=3, random_state=0)
    model = DecisionTreeClassifier(random_state=0).fit(X, y)
    s = Skv(skvault.dumps(model))
    state = s.state(s.first("sklearn.tree._tree.Tree"))
    nodes = s.array(s.key(state, "nodes"))
    nodes["left_child"][0] = nodes["right_child"][0] = HUGE
    path = tmp_path / "hostile.skv"
    path.write_bytes(s.save())

    result = _run(
        FIT
        + f"""
import skvault
from skvault.errors import InvalidStateError
try:
    loaded = skvault.load({str(path)!r})
except InvalidStateError as exc:
    print("refused:", exc.rule)
else:
    loaded.predict(X)  # would crash: the test then sees a signal
    print("loaded")
"""
    )
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout.strip() == (
        f"refused: nodes[0].left_child = {HUGE} is outside [1, {model.tree_.node_count})"
    )


def test_the_unedited_file_loads_and_predicts_in_a_child(tmp_path: Path) -> None:
    # the child process is able to load and predict: the refusal above is the rule, not setup
    X, y = make_classification(200, 5, n_informative=3, random_state=0)
    model = DecisionTreeClassifier(random_state=0).fit(X, y)
    path = tmp_path / "model.skv"
    path.write_bytes(Skv(skvault.dumps(model)).save())
    expected = model.predict(X).tolist()
    result = _run(
        FIT
        + f"""
import skvault
print(skvault.load({str(path)!r}).predict(X).tolist())
"""
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(expected)
    assert np.array_equal(model.predict(X), np.array(expected))
