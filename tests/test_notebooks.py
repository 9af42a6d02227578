"""Every notebook runs end to end, headless, with the quick budget (NASNB_QUICK=1).

The headless run also answers the notebook's checked exercises with the model answers below (the
`answer_k = ...` lines are replaced before the run), and every check must then say "correct": the
checks accept the right answers. The browser test (tests/browser) runs the notebooks as committed,
where each check says the exercise is still open.
"""
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# Model answers of the checked exercises, worked out by hand from the notebooks' questions.
MODEL_ANSWERS = {
    "04_darts.ipynb": {1: "2 * 14 * 8", 2: "4 / 8", 3: "4", 4: "10 - 9.9 * 100 / 199", 5: "(3, 17)"},
    "05_enas.ipynb": {1: "5 ** 6", 2: "(6 * 4, 6)", 3: "0.99 * 0.8 + 0.01 * 0.9", 4: "(5 - 1) / 6"},
}
ANSWER_LINE = re.compile(r"^answer_(\d+) = \.\.\.$", re.MULTILINE)


def answer_exercises(nb, answers: dict) -> int:
    """Replace each `answer_k = ...` line by the model answer k; returns how many were replaced."""
    replaced = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            def answer(match):
                nonlocal replaced
                replaced += 1
                return f"answer_{match.group(1)} = {answers[int(match.group(1))]}"
            cell.source = ANSWER_LINE.sub(answer, cell.source)
    return replaced


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not with_outputs, f"{path.name}: clear the outputs of cells {with_outputs} before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs_headless_with_quick_budget(path, tmp_path, monkeypatch):
    monkeypatch.setenv("NASNB_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(path, as_version=4)
    answers = MODEL_ANSWERS.get(path.name, {})
    assert answer_exercises(nb, answers) == len(answers), f"{path.name}: not every checked exercise was found"
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    for k in answers:
        assert f"exercise {k}: correct." in text, f"{path.name}: exercise {k}'s check refused the model answer"
    # Something was shown: at least one image (a drawing or a plot) and one widget.
    kinds = {key for c in nb.cells if c.cell_type == "code" for o in c.outputs for key in o.get("data", {})}
    assert kinds & {"image/svg+xml", "image/png"}, f"{path.name} displayed no picture"
    assert "application/vnd.jupyter.widget-view+json" in kinds, f"{path.name} displayed no widget"
