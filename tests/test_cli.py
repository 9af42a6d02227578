"""The `nasnb` command: lab copies the notebooks; search and draw write their files."""
import subprocess
import sys
from pathlib import Path

import pytest

from nasnb import cli

ROOT = Path(__file__).resolve().parents[1]


def test_lab_copies_bundled_notebooks_and_keeps_existing_files(tmp_path):
    dest = tmp_path / "course"
    assert cli.main(["lab", "--dir", str(dest), "--no-launch"]) == 0
    copied = sorted(p.name for p in dest.glob("*.ipynb"))
    assert copied == sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    edited = dest / copied[0]
    edited.write_text("my edits")
    cli.main(["lab", "--dir", str(dest), "--no-launch"])
    assert edited.read_text() == "my edits", "nasnb lab must not overwrite a student's work"
    cli.main(["lab", "--dir", str(dest), "--no-launch", "--force"])
    assert edited.read_text() != "my edits"


def test_search_writes_history_checkpoint_and_figures_and_resumes(tmp_path):
    from nasnb.history import History
    from nasnb.spaces import NB201Space

    out = tmp_path / "run"
    args = ["search", "--epochs", "1", "--train-size", "200", "--device", "cpu", "--out", str(out), "--seed", "3"]
    assert cli.main(args + ["--trials", "2"]) == 0
    history = History.load(out / "history.json")
    assert [t.number for t in history] == [0, 1] and history.meta["strategy"] == "RandomSearch"
    space = NB201Space()
    for trial in history:
        space.parse(trial.arch)  # valid arch strings
        assert 0.0 <= trial.metrics["val_accuracy"] <= 1.0 and trial.metrics["params"] > 0
    assert (out / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(out.glob("best_cell.*")) and (out / "search.ckpt").exists()
    # The same command with a larger budget continues from the checkpoint: trials 0-1 are kept.
    assert cli.main(args + ["--trials", "3"]) == 0
    longer = History.load(out / "history.json")
    assert len(longer) == 3 and longer.trials[:2] == history.trials


def test_search_is_reproducible_with_a_seed(tmp_path):
    from nasnb.history import History

    args = ["search", "--trials", "2", "--epochs", "1", "--train-size", "150", "--device", "cpu", "--seed", "5"]
    cli.main(args + ["--out", str(tmp_path / "a")])
    cli.main(args + ["--out", str(tmp_path / "b")])
    a, b = (History.load(tmp_path / d / "history.json") for d in "ab")
    strip = lambda h: [(t.arch, t.metrics["val_accuracy"], t.metrics["params"]) for t in h]
    assert strip(a) == strip(b)


def test_draw_published_genotype_and_arch_string(tmp_path):
    assert cli.main(["draw", "DARTS_V2", "-o", str(tmp_path / "d.png")]) == 0
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert cli.main(["draw", arch, "-o", str(tmp_path / "c.svg")]) == 0
    assert b"<svg" in (tmp_path / "c.svg").read_bytes()


def test_unknown_space_is_a_clear_error():
    with pytest.raises(SystemExit, match="unknown space 'nb101'"):
        cli.main(["draw", "x", "--space", "nb101"])
    with pytest.raises(SystemExit):
        cli.main(["search", "--strategy", "bayesian"])


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "nasnb.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "lab" in out.stdout and "search" in out.stdout
