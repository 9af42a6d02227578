"""The `nasnb` command: lab copies the notebooks and starts JupyterLab with the arguments given;
search and draw write their files; every user error is one line on stderr and exit status 2."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasnb import cli, registry
from nasnb.errors import DamagedFileError, ResumeMismatchError
from nasnb.spaces import NB201Space
from nasnb.spaces.nb201 import OPS as NB201_OPS
from nasnb.spaces.toy import ToySpace

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


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "nasnb.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "lab" in out.stdout and "search" in out.stdout


# ============================================================================= nasnb lab -> jupyter lab


class FakeServer:
    """Stands in for subprocess.Popen(jupyter lab ...): records the command, exits with 0."""

    commands = []

    def __init__(self, command):
        self.commands.append(command)

    def wait(self):
        return 0


@pytest.fixture
def fake_jupyter(monkeypatch):
    FakeServer.commands = []
    monkeypatch.setattr(cli.subprocess, "Popen", FakeServer)
    return FakeServer.commands


def jupyter_arguments(command):
    """What follows `python -m jupyterlab --ServerApp.root_dir=...` in the command nasnb lab starts."""
    assert command[1:3] == ["-m", "jupyterlab"] and command[3].startswith("--ServerApp.root_dir=")
    return command[4:]


def test_lab_passes_arguments_it_does_not_know_on_to_jupyter(tmp_path, fake_jupyter, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    argv = ["lab", "--no-browser", "--port", "8899", "--dir", str(tmp_path / "d"), "--ServerApp.token=abc"]
    assert cli.main(argv) == 0
    (command,) = fake_jupyter
    assert command[3] == f"--ServerApp.root_dir={(tmp_path / 'd').resolve()}"  # --dir was ours
    assert jupyter_arguments(command) == ["--no-browser", "--port", "8899", "--ServerApp.token=abc"]


def test_lab_passes_everything_after_a_double_dash_on(tmp_path, fake_jupyter, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert cli.main(["lab", "--dir", str(tmp_path / "d"), "--", "--force", "--port", "1"]) == 0
    assert jupyter_arguments(fake_jupyter[0]) == ["--force", "--port", "1"]  # --force was not ours this time


def test_lab_adds_allow_root_only_for_root_and_only_once(tmp_path, fake_jupyter, monkeypatch, capsys):
    dest = ["--dir", str(tmp_path / "d")]
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    cli.main(["lab", *dest, "--no-browser"])
    cli.main(["lab", *dest, "--allow-root"])
    cli.main(["lab", *dest, "--ServerApp.allow_root=False"])  # the user decided: left alone
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    cli.main(["lab", *dest, "--no-browser"])
    monkeypatch.delattr(os, "geteuid")  # Windows has no root
    cli.main(["lab", *dest])
    assert [jupyter_arguments(c) for c in fake_jupyter] == [
        ["--no-browser", "--allow-root"], ["--allow-root"], ["--ServerApp.allow_root=False"], ["--no-browser"], []]
    assert capsys.readouterr().out.count("running as root: passing --allow-root") == 1


def test_lab_keeps_waiting_when_ctrl_c_reaches_it_and_jupyter_asks_to_confirm(tmp_path, monkeypatch):
    class AskingServer:
        waits = 0

        def __init__(self, command):
            pass

        def wait(self):
            AskingServer.waits += 1
            if AskingServer.waits == 1:
                raise KeyboardInterrupt  # the terminal's Ctrl-C; jupyter got it too and asks y/[n]
            return 3

    monkeypatch.setattr(cli.subprocess, "Popen", AskingServer)
    assert cli.main(["lab", "--dir", str(tmp_path / "d")]) == 3  # jupyter's own exit status
    assert AskingServer.waits == 2


# ============================================================================= user errors: one line, status 2


TOY_ARCH = "op3-op2-op1-op0-op3-op2"

USER_ERRORS = [  # argv, a part of the one line printed
    (["search", "--train-size", "0"], "--train-size must be an int >= 1, got 0"),  # 0 is a value, not "not given"
    (["search", "--epochs", "-1"], "--epochs must be an int >= 1, got -1"),
    (["search", "--epochs", "0", "--space", "toy"], "--epochs must be an int >= 1, got 0"),
    (["search", "--trials", "0"], "--trials must be an int >= 1, got 0"),  # 0 trials: nothing to report
    (["search", "--seed", "-1"], "--seed must be an int >= 0, got -1"),
    (["search", "--trials", "two"], "argument --trials: invalid int value: 'two'"),
    (["search", "--space", "nb101"], "argument --space: invalid choice: 'nb101'"),
    (["search", "--strategy", "bayesian"], "argument --strategy: invalid choice: 'bayesian'"),
    (["search", "--dataset", "imagenet"], "argument --dataset: invalid choice: 'imagenet'"),
    (["search", "--device", "gpu7"], "--device: unknown device 'gpu7'"),
    (["search", "--train-size", "100000", "--device", "cpu"], "--train-size: train_size=100000"),
    (["search", "--no-browser"], "unrecognized arguments: --no-browser"),
    (["draw", "|nor_conv_3x3~0|+|x|"], "cannot read '|nor_conv_3x3~0|+|x|' as an arch of the nb201 space"),
    (["draw", "Genotype(normal=[("], "as an arch of the darts space"),
    (["draw", "op0-op1", "--space", "toy"], "as an arch of the toy space"),
    (["draw", TOY_ARCH, "--space", "nb101"], "argument --space: invalid choice: 'nb101'"),
    (["draw", "DARTS_V2", "-o", "cell.jpg"], "cannot write 'cell.jpg': use a .svg or .png file name"),
    (["draw", "DARTS_V2", "-o", "no/such/folder/cell.svg"], "No such file or directory: no/such/folder/cell.svg"),
    (["draw"], "the following arguments are required: arch"),
    (["train"], "argument command: invalid choice: 'train'"),
    (["search", "--space", "toy", "--restart-after", "5"], "--restart-after restarts AutoML-Zero's experiments"),
    (["search", "--space", "toy", "--strategy", "darts", "--stop-at", "0.9"],
     "--stop-at: --strategy darts records steps"),
    (["search", "--space", "toy", "--stop-at", "high"], "argument --stop-at: invalid float value: 'high'"),
    (["search", "--space", "toy", "--strategy", "random", "--population", "10"], "--population sets the population"),
    (["search", "--space", "toy", "--strategy", "evolution", "--population", "0"],
     "--population must be an int >= 1, got 0"),
    (["search", "--space", "programs-linear", "--strategy", "automl_zero", "--restart-after", "0"],
     "--restart-after must be an int >= 1, got 0"),
]


@pytest.mark.parametrize("argv, message", USER_ERRORS, ids=[" ".join(argv) for argv, _ in USER_ERRORS])
def test_a_user_error_is_one_line_on_stderr_and_status_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing may be written; if something were, not into the checkout
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("nasnb: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "nasnb-runs").exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv", [["search", "--train-size", "0"], ["search", "--space", "nb101"],
                                  ["draw", "|nor_conv_3x3~0|"]])
def test_the_installed_command_exits_2_without_a_traceback(argv, tmp_path):
    run = subprocess.run([sys.executable, "-m", "nasnb.cli", *argv], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.startswith("nasnb: error: ") and run.stderr.count("\n") == 1, run.stderr


def run_toy_search(out, strategy="random", trials=5):
    return cli.main(["search", "--space", "toy", "--strategy", strategy, "--trials", str(trials), "--out", str(out)])


@pytest.mark.parametrize("error", [ResumeMismatchError("the checkpoint was written by a run with epochs=3"),
                                   DamagedFileError("search.ckpt/journal.jsonl line 4 is not JSON")])
def test_a_checkpoint_of_another_run_or_a_damaged_one_is_one_line(error, tmp_path, monkeypatch, capsys):
    def refuse(self, n, **kwargs):
        raise error

    monkeypatch.setattr(registry.get("strategy", "random"), "run", refuse)
    assert run_toy_search(tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nasnb: error: {error}") and err.count("\n") == 1
    if isinstance(error, ResumeMismatchError):  # the CLI says what to do about it
        assert f"choose another --out (or remove {tmp_path / 'run' / 'search.ckpt'})" in err


def test_running_again_with_other_settings_or_a_damaged_checkpoint_refuses_in_one_line(tmp_path, capsys):
    """For real: the search core refuses to continue a checkpoint of another run; nothing is mixed."""
    from nasnb.history import History

    out = tmp_path / "run"
    args = ["search", "--trials", "2", "--train-size", "100", "--device", "cpu", "--out", str(out)]
    assert cli.main(args + ["--epochs", "1", "--trials", "1"]) == 0
    capsys.readouterr()
    for other in (["--epochs", "2"], ["--epochs", "1", "--strategy", "evolution"]):
        assert cli.main(args + other) == 2
        err = capsys.readouterr().err
        assert err.startswith("nasnb: error: ") and err.count("\n") == 1 and "another --out" in err, err
    assert len(History.load(out / "history.json")) == 1
    for part in (out / "search.ckpt").rglob("*"):
        if part.is_file():
            part.write_text("not a checkpoint")
    assert cli.main(args + ["--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasnb: error: ") and err.count("\n") == 1 and str(out / "search.ckpt") in err, err


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    def broken(self, n, **kwargs):
        raise ZeroDivisionError("a bug in nasnb")

    monkeypatch.setattr(registry.get("strategy", "random"), "run", broken)
    with pytest.raises(ZeroDivisionError):
        run_toy_search(tmp_path / "run")


def test_ctrl_c_during_a_search_says_how_to_continue(tmp_path, monkeypatch, capsys):
    def interrupted(self, n, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(registry.get("strategy", "random"), "run", interrupted)
    assert run_toy_search(tmp_path / "run") == 130
    assert "run the same command again to continue" in capsys.readouterr().err


# ============================================================================= search: names from the registry


def test_search_on_the_toy_space_scores_by_its_formula_without_training(tmp_path):
    """ToySpace builds no network: its known score is the evaluator (a search in a second)."""
    from nasnb.history import History

    out = tmp_path / "toy"
    assert run_toy_search(out, strategy="evolution", trials=12) == 0
    history = History.load(out / "history.json")
    space = ToySpace()
    assert len(history) == 12 and history.meta["strategy"] == "RegularizedEvolution"
    for trial in history:  # the fraction of positions equal to the hidden target
        arch = space.parse(trial.arch)
        assert trial.metrics["val_accuracy"] == sum(a == t for a, t in zip(arch, space.target)) / space.length
        assert "params" not in trial.metrics  # nothing was built
    assert (out / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and list(out.glob("best_cell.*"))


@pytest.mark.parametrize("strategy, view", [("random", "progress"), ("evolution", "population"),
                                            ("reinforce", "policy")])
def test_search_draws_the_strategys_own_view_from_the_registry(strategy, view, tmp_path, monkeypatch):
    asked = []
    real_get = registry.get
    monkeypatch.setattr(registry, "get", lambda kind, name: asked.append((kind, name)) or real_get(kind, name))
    assert run_toy_search(tmp_path / strategy, strategy=strategy, trials=4) == 0
    assert ("space", "toy") in asked and ("strategy", strategy) in asked
    assert [name for kind, name in asked if kind == "view"] == [view]
    assert (tmp_path / strategy / "search.png").stat().st_size > 0


def test_space_and_strategy_choices_are_the_registrys(monkeypatch, capsys):
    monkeypatch.setitem(registry.REGISTRIES["strategy"], "mine", "nasnb.strategies.random:RandomSearch")
    with pytest.raises(SystemExit):
        cli.main(["search", "--help"])
    help_text = capsys.readouterr().out
    assert "{" + ",".join(registry.names("space")) + "}" in help_text
    assert "{" + ",".join(registry.names("strategy")) + "}" in help_text and "mine" in help_text


def test_search_with_darts_records_steps_draws_the_derived_cell_and_resumes(tmp_path):
    """A one-shot search from the terminal: --trials counts its steps, the cell drawn is the derived
    one (the argmax of α per edge, as the saved history's last step says), and it continues."""
    from nasnb.history import History, Step

    out = tmp_path / "darts"
    args = ["search", "--strategy", "darts", "--train-size", "64", "--device", "cpu", "--out", str(out)]
    assert cli.main(args + ["--trials", "2"]) == 0
    history = History.load(out / "history.json")
    assert len(history) == 2 and all(isinstance(r, Step) for r in history)
    alphas = history[-1].info["alphas"]["cell"]  # softmax(α): 6 edges x 5 ops
    by_hand = [NB201_OPS[max(range(len(edge)), key=edge.__getitem__)] for edge in alphas]
    assert history[-1].arch == NB201Space().format(tuple(by_hand))
    assert list(out.glob("best_cell.*")) and (out / "search.png").exists()
    assert cli.main(args + ["--trials", "3"]) == 0
    longer = History.load(out / "history.json")
    assert len(longer) == 3 and longer[:2] == history[:2]
    assert cli.main(["search", "--strategy", "darts", "--space", "toy", "--trials", "1"]) == 2


def test_search_with_proxylessnas_on_the_mobilenet_space_only(tmp_path, capsys):
    from nasnb.history import History
    from nasnb.spaces import MobileNetSpace

    out = tmp_path / "proxyless"
    args = ["search", "--strategy", "proxyless", "--space", "mobilenet", "--train-size", "64", "--device", "cpu",
            "--trials", "2", "--out", str(out)]
    assert cli.main(args) == 0
    history = History.load(out / "history.json")
    assert len(history) == 2 and MobileNetSpace().parse(history[-1].arch)  # the derived chain, parsed back
    capsys.readouterr()
    assert cli.main(["search", "--strategy", "proxyless", "--space", "nb201", "--trials", "1"]) == 2
    assert "searches only --space mobilenet, not nb201" in capsys.readouterr().err


def test_search_with_enas_records_steps_draws_the_greedy_cell_and_resumes(tmp_path):
    """ENAS from the terminal, as DARTS: --trials counts its steps, the cell drawn is the one its
    controller decodes greedily (checked by loading the checkpoint into a search built here), the
    figure is its policy, and it continues."""
    import nasnb
    from nasnb.history import History, Step
    from nasnb.strategies import ENAS

    out = tmp_path / "enas"
    args = ["search", "--strategy", "enas", "--train-size", "64", "--device", "cpu", "--out", str(out)]
    assert cli.main(args + ["--trials", "1"]) == 0
    history = History.load(out / "history.json")
    assert len(history) == 1 and isinstance(history[0], Step) and len(history[0].info["samples"]) == 10
    data = nasnb.data.load("digits", seed=0).subset(train_size=64, seed=0)
    search = ENAS(NB201Space(), data, device="cpu", seed=0)
    search.resume(out / "search.ckpt")
    assert history[0].arch == NB201Space().format(search.derived())
    assert list(out.glob("best_cell.*")) and (out / "search.png").exists()
    assert cli.main(args + ["--trials", "2"]) == 0
    longer = History.load(out / "history.json")
    assert len(longer) == 2 and longer[:1] == history[:1]
    assert cli.main(["search", "--strategy", "enas", "--space", "toy", "--trials", "1"]) == 2


# ============================================================================= training options


def search_args(*argv):
    return cli.build_parser().parse_args(["search", *argv])


def test_training_options_follow_the_space_unless_told_otherwise():
    from nasnb.spaces import NB201Space, TransformerSpace

    transformer, nb201 = TransformerSpace(), NB201Space()
    assert cli.training_options(nb201, search_args()) == {"optimizer": "sgd", "lr": 0.025}  # fit's own defaults
    assert cli.training_options(nb201, search_args("--optimizer", "adam")) == {"optimizer": "adam", "lr": 1e-3}
    # TransformerSpace trains with Adam: its rate and weight decay come with it...
    assert cli.training_options(transformer, search_args()) == {"optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0}
    assert cli.training_options(transformer, search_args("--lr", "0.01"))["lr"] == 0.01
    # ... and not with SGD, which gets SGD's rate and fit's weight decay
    assert cli.training_options(transformer, search_args("--optimizer", "sgd")) == {"optimizer": "sgd", "lr": 0.025}


def test_the_evaluator_of_nasnb_search_trains_with_those_options():
    from nasnb.spaces import TransformerSpace

    args = search_args("--space", "transformer", "--dataset", "seq-count", "--train-size", "50", "--device", "cpu")
    evaluator = cli.make_evaluator(TransformerSpace(), args)
    assert (evaluator.fit_settings["optimizer"], evaluator.fit_settings["lr"], evaluator.fit_settings["weight_decay"]) \
        == ("adam", 3e-3, 0.0)


@pytest.mark.parametrize("lr", ["0", "-0.1", "nan", "inf"])
def test_a_learning_rate_that_is_not_positive_is_one_line(lr, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["search", "--lr", lr, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasnb: error: --lr must be a finite number > 0.0, got ") and err.count("\n") == 1, err
    assert not list(tmp_path.iterdir())


def test_search_with_automl_zero_on_programs_restarts_and_resumes(tmp_path, capsys):
    """AutoML-Zero from the shell: programs scored by ProgramEvaluator's fitness (no data, no training),
    restarts recorded per trial, the best program printed as code, a second run resumes."""
    from nasnb.history import History
    from nasnb.spaces.programs import linear_regression_space

    out = tmp_path / "az"
    argv = ["search", "--space", "programs-linear", "--strategy", "automl_zero", "--trials", "1500",
            "--restart-after", "300", "--population", "50", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    history = History.load(out / "history.json")
    assert len(history) == 1500 and history.meta["strategy"] == "AutoMLZero" and history.metric == "fitness"
    space = linear_regression_space()
    assert all(space.parse(t.arch) for t in history)  # every trial a program of the authors' linear example
    experiments = [t.info["experiment"] for t in history]
    assert experiments[0] == 0 and max(experiments) >= 1 and experiments == sorted(experiments)
    assert history.meta["population_size"] == 50
    for k in range(max(experiments) + 1):  # each experiment begins with P = 50 random programs, then mutates
        first = experiments.index(k)
        assert {t.info["kind"] for t in history[first:first + 50]} == {"random"}
        assert history[first + 50].info["kind"] == "mutation" or experiments[first + 50] != k
    best = max(history, key=lambda t: t.metrics["fitness"])
    assert f"fitness={best.metrics['fitness']:.3f}\n{best.arch}" in printed  # the program on its own lines
    assert (out / "search.png").stat().st_size > 0 and list(out.glob("best_cell.*"))
    assert cli.main(argv) == 0  # the same command again: resumed, nothing more to do
    again = json.loads(History.load(out / "history.json").to_json())
    diff = [(a, b) for a, b in zip(json.loads(history.to_json())["records"], again["records"]) if a != b]
    assert not diff, diff[:1]


def test_random_search_on_programs_maximises_their_fitness(tmp_path):
    from nasnb.history import History

    out = tmp_path / "rs"
    assert cli.main(["search", "--space", "programs-linear", "--strategy", "random", "--trials", "40",
                     "--out", str(out)]) == 0
    history = History.load(out / "history.json")
    assert history.metric == "fitness" and all(0.0 <= t.metrics["fitness"] <= 1.0 for t in history)


def test_stop_at_ends_the_search_at_the_first_trial_that_reaches_it(tmp_path, capsys):
    from nasnb.history import History

    out = tmp_path / "stop"
    argv = ["search", "--space", "toy", "--strategy", "evolution", "--trials", "400", "--stop-at", "1.0",
            "--out", str(out)]
    assert cli.main(argv) == 0
    history = History.load(out / "history.json")
    values = [t.metrics["val_accuracy"] for t in history]
    assert len(history) < 400 and values[-1] == 1.0 and max(values[:-1]) < 1.0  # stopped at the first optimum
    assert f"stopped after trial {len(history) - 1}: val_accuracy=1 reached --stop-at 1.0" in capsys.readouterr().err
    assert cli.main(argv) == 0  # resumed: the target was reached already, so one more trial at most
    assert len(History.load(out / "history.json")) <= len(history) + 1
