"""Every notebook runs end to end, headless, with the quick budget (NASNB_QUICK=1).

The headless run also answers the notebook's checked exercises with the model answers below (the
`answer_k = ...` lines are replaced before the run), and every check must then say "correct": the
checks accept the right answers. For the exercises in WRONG_ANSWERS a copy of the check cell runs
first with a wrong answer, which must get the hint: the checks also refuse. The browser test
(tests/browser) runs the notebooks as committed, where each check says the exercise is still open.
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
    # 01-03: by hand where the question allows; where an answer is a measurement, by another route
    # than the check's (the strategy's own population list, a training by hand, canonical vs trained_arch).
    "01_search_spaces.ipynb": {
        1: '("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|", 3 ** 6)',
        2: '(3 ** 6, *(len({space.canonical(c, rule) for c in space.enumerate() if not any("conv" in op for op in c)})'
           ' for rule in ("nb201", "algebra")))',
        3: '{"a", "c"}',
        4: "(2 * (4 * 36 * 2 * 36 + 2 * 2 * 36), 0)",
        5: '"|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"',
    },
    "02_evolution.ipynb": {
        1: "tuple(1 - (1 - 1 / 10) ** s for s in (1, 3, 30))",
        2: "lambda t: t - 1 - POPULATION",
        3: 'tuple(float(np.mean([run.history[k].metrics["val_accuracy"] - run.history[k].metrics["true_score"]'
           " for k in run.population])) for run in (noisy_runs[True], noisy_runs[False]))",
        # retrained by hand: the class representative, seeded weights, fit with the evaluator's settings
        4: '(lambda cell: nasnb.train.fit((torch.manual_seed(SEED + 1), space.build(cell, C=8, N=1, num_classes=10,'
           ' in_channels=1))[1], data, EPOCHS, seed=SEED + 1, progress=False)[-1]["val_accuracy"])'
           '(space.parse(search.best().metrics["trained_arch"])) - search.best().value("val_accuracy")',
        5: "lambda k: k - 1 - k % 2",
        6: "len(search.history) - len({space.canonical(space.parse(t.arch)) for t in search.history})",
    },
    "03_reinforce.ipynb": {
        1: "(math.exp(2.5) / (math.exp(2.5) + 4 * math.exp(-2.5)), (math.exp(2.5) / (math.exp(2.5) + 4 * math.exp(-2.5))) ** 6)",
        2: "(23, 23 // 5)",
        3: "(0.95 ** 3 - 0.90 ** 3) / (0.95 - 0.90)",
        4: "(6 * 5, 64 + 4 * 64 * (64 + 64) + 2 * 4 * 64 + 5 * 5 * 64 + 6 * (64 * 5 + 5))",
        5: "0.0",
    },
    "04_darts.ipynb": {1: "2 * 14 * 8", 2: "4 / 8", 3: "4", 4: "10 - 9.9 * 100 / 199", 5: "(3, 17)"},
    "05_enas.ipynb": {1: "5 ** 6", 2: "(6 * 4, 6)", 3: "0.99 * 0.8 + 0.01 * 0.9", 4: "(5 - 1) / 6"},
    "09_metaqnn.ipynb": {1: "2 + (2 + 2 + 2) + (2 + 1 + 2) + 2",
                         2: "(0.99 * 0.5 + 0.01 * (0.99 * 0.5 + 0.01 * 0.8), 0.99 * 0.5 + 0.01 * 0.8)",
                         3: "100 * sum(1 / k for k in range(1, 55))", 4: '(0.9 ** 2 * 0.95, "b")',
                         5: "(round(1500 * 0.02), 5 * round(150 * 0.02))"},
    "08_cheap_evaluation.ipynb": {1: "(27, [1, 3, 9, 27])", 2: "(9 * 1 + 3 * 3 + 1 * 10) / 10", 3: "{0, 2}",
                                  4: "(5 - 1) / 6", 5: "(900 // (9 * 1 + 3 * 3 + 1 * 9)) * 9"},
    "10_transformer_space.ipynb": {1: "16 + 16 ** 2", 2: "1 + 10 + 10 ** 2",
                                   3: "(3 * 32 ** 2 + 3 * 32) + (32 ** 2 + 32) + 2 * 2 * 32 + (32 * 64 + 64 + 64 * 32 + 32)",
                                   4: "math.comb(8, 2) * 3 ** 6 / 4 ** 8"},
    "07_hardware_aware.ipynb": {1: '{"A", "B", "D"}', 2: "0.05 * 1 + 0.07 * 2 + 0.08 * 3",
                                3: "(3 - 1) / (4 - 1) + (4 - 1.5) / (4 - 1)", 4: "(0.95 * 2 ** -0.07, 0.95 / 2)",
                                5: "(1 * 1.0 + 1 * 2.0 + 2 * 0.0) / 4", 6: "(4 * 6, 6 ** 2 * 7 ** 4)"},
    "11_automl_zero.ipynb": {1: "1 - 2 / math.pi * math.atan(0.5)", 2: '"insert"', 3: "150 / (20 + 0.1 * 150)",
                             4: '"v1 = v1 + v2"', 5: "{1, 5}", 6: "(1 - 0.25) / 0.25 * 400_000 + 300_000"},
    # 06: the table's arrays and lookups by hand, where the checks use nasnb.bench.race or a loop over the space
    "06_strategy_race.ipynb": {
        1: '(lambda m: (m, 1 - (1 - m / 15625) ** TRIALS))(int(np.sum(table.class_of == table.row(table.optimum("test_accuracy")[0]))))',
        2: '(lambda h: table.optimum("test_accuracy")[1] - table.query(max(h.trials[:10], key=lambda t: t.value("val_accuracy"))'
           '.arch)["test_accuracy"])(runs["random search"][0])',
        3: "max(1, math.ceil((1.96 * final_std / 0.001) ** 2))",
        4: 'sum(t.metrics["seconds"] for t in runs["regularized evolution"][0].trials[:20])',
    },
}
# Wrong answers (cheap checks only: the check cell runs twice), each of which must get the hint.
WRONG_ANSWERS = {
    "01_search_spaces.ipynb": {3: '{"a", "b"}'},
    "02_evolution.ipynb": {2: "lambda t: t - POPULATION"},
    "03_reinforce.ipynb": {3: "3.0"},
    "07_hardware_aware.ipynb": {1: '{"A", "B", "D", "E"}', 5: "(1.0 + 2.0 + 0.0) / 3"},
    "09_metaqnn.ipynb": {1: "2 + (2 + 2 + 2) + (2 + 1 + 2)", 2: "(0.5, 0.99 * 0.5 + 0.01 * 0.8)"},
    "08_cheap_evaluation.ipynb": {1: "(9, [1, 3, 9, 27])", 2: "(9 * 1 + 3 * 3 + 1 * 9) / 10", 3: "{2, 3}"},
    "10_transformer_space.ipynb": {1: "16 * 2", 2: "16 + 16 ** 2", 3: "4 * 32 ** 2 + 2 * 32 * 64", 4: "1 / 9"},
    "06_strategy_race.ipynb": {3: "math.ceil(1.96 * final_std / 0.001)"},
    "11_automl_zero.ipynb": {1: "1 - 0.5", 3: "1 / 0.1", 4: '"v1 = v1 - v2"', 5: "{5}", 6: "300_000 / 0.25"},
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


def add_wrong_answer_cells(nb, wrong: dict) -> int:
    """Before each check cell of an exercise k in `wrong`, insert a copy answering wrong[k]; returns how many."""
    cells = []
    for cell in nb.cells:
        match = ANSWER_LINE.search(cell.source) if cell.cell_type == "code" else None
        if match and int(match.group(1)) in wrong:
            copy = nbformat.v4.new_code_cell(ANSWER_LINE.sub(f"answer_{match.group(1)} = {wrong[int(match.group(1))]}",
                                                             cell.source))
            copy.id = f"{cell.get('id', 'cell')}-wrong"
            cells.append(copy)
        cells.append(cell)
    added = len(cells) - len(nb.cells)
    nb.cells = cells
    return added


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
    answers, wrong = MODEL_ANSWERS.get(path.name, {}), WRONG_ANSWERS.get(path.name, {})
    assert add_wrong_answer_cells(nb, wrong) == len(wrong), f"{path.name}: not every exercise of WRONG_ANSWERS was found"
    assert answer_exercises(nb, answers) == len(answers), f"{path.name}: not every checked exercise was found"
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    for k in answers:
        assert f"exercise {k}: correct." in text, f"{path.name}: exercise {k}'s check refused the model answer"
    for k in wrong:
        assert re.search(rf"exercise {k}: not quite \(.*\)\. Hint: \S", text), \
            f"{path.name}: exercise {k}'s check did not refuse the wrong answer {wrong[k]} with a hint"
    # Something was shown: at least one image (a drawing or a plot) and one widget.
    kinds = {key for c in nb.cells if c.cell_type == "code" for o in c.outputs for key in o.get("data", {})}
    assert kinds & {"image/svg+xml", "image/png"}, f"{path.name} displayed no picture"
    assert "application/vnd.jupyter.widget-view+json" in kinds, f"{path.name} displayed no widget"
