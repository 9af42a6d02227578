"""The `nasnb` command: lab copies the notebooks; search and draw write their files."""
import json
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


def test_search_writes_trials_after_each_trial_and_figures(tmp_path):
    out = tmp_path / "run"
    code = cli.main(["search", "--trials", "2", "--epochs", "1", "--train-size", "200",
                     "--device", "cpu", "--out", str(out), "--seed", "3"])
    assert code == 0
    result = json.loads((out / "trials.json").read_text())
    assert [t["number"] for t in result["trials"]] == [0, 1]
    from nasnb.spaces import NB201Space

    space = NB201Space()
    for trial in result["trials"]:
        space.parse(trial["arch"])  # valid arch strings
        assert 0.0 <= trial["metrics"]["val_accuracy"] <= 1.0
        assert trial["metrics"]["params"] > 0
    assert (out / "trials.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(out.glob("best_cell.*"))


def test_search_is_reproducible_with_a_seed(tmp_path):
    args = ["search", "--trials", "2", "--epochs", "1", "--train-size", "150", "--device", "cpu", "--seed", "5"]
    cli.main(args + ["--out", str(tmp_path / "a")])
    cli.main(args + ["--out", str(tmp_path / "b")])
    a = json.loads((tmp_path / "a" / "trials.json").read_text())["trials"]
    b = json.loads((tmp_path / "b" / "trials.json").read_text())["trials"]
    strip = lambda trials: [(t["arch"], t["metrics"]["val_accuracy"], t["metrics"]["params"]) for t in trials]
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


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "nasnb.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "lab" in out.stdout and "search" in out.stdout
