"""tools/real_ab.py: renaming merged rows keeps their figures and their order."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))


def test_rename_rows_keeps_figures_and_order():
    from real_ab import rename_rows

    results = {"E": {"x": 1}, "H": {"x": 2}, "I": {"x": 3}}
    models = {"E": "e.pt", "H": "h.pt", "I": "i.pt"}
    commands = {"H": "train ..."}
    r, m, c = rename_rows({"H": "H: long label", "I": "I: soup"}, results, models, commands)
    assert list(r) == ["E", "H: long label", "I: soup"] and r["H: long label"] == {"x": 2}
    assert m["I: soup"] == "i.pt" and c == {"H: long label": "train ..."}
    assert list(results) == ["E", "H", "I"]  # the inputs are not changed
    with pytest.raises(SystemExit, match="no merged row 'Z'"):
        rename_rows({"Z": "z"}, results, models, commands)
