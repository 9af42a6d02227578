"""Checkpoint folders: append-only, mended after a kill, damaged or foreign files named, umask kept."""
import json
import os
import pickle

import pytest
import torch

from nasnb.errors import DamagedFileError, NasnbError, ResumeMismatchError
from nasnb.history import History, atomic_write
from nasnb.spaces.toy import ToySpace
from nasnb.storage import Checkpoint
from nasnb.strategies import RandomSearch, RegularizedEvolution, Reinforce


def record(history):
    return [(t.number, t.arch, t.metrics, t.info, t.state) for t in history]


def evolution(seed=3, **kwargs):
    space = ToySpace(length=5, options=3)
    return RegularizedEvolution(space, space.evaluate, population_size=4, sample_size=2, seed=seed, **kwargs)


def test_layout_is_a_journal_line_per_trial_plus_a_state_file(tmp_path):
    path = tmp_path / "evo.ckpt"
    search = evolution()
    search.run(6, checkpoint=path, progress=False)
    lines = (path / "journal.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == "nasnb-journal" and header["settings"]["population_size"] == 4
    assert [json.loads(line) for line in lines[1:]] == [t.to_dict() for t in search.history]
    state = torch.load(path / "state.pt", weights_only=True)
    assert state["records"] == 6 and state["run"] == header["run"]
    assert sorted(p.name for p in path.iterdir()) == ["journal.jsonl", "state.pt"]


def test_bytes_per_trial_do_not_grow_with_the_run(tmp_path):
    """Append-only: the journal grows by one line per trial and the state file keeps its size, so
    trial 400 costs what trial 40 cost (a whole-history rewrite would cost 10x more)."""
    path = tmp_path / "random.ckpt"
    space = ToySpace(length=6, options=4)
    search = RandomSearch(space, space.evaluate, seed=0)
    sizes = {}
    for n in (40, 400):
        search.run(n, checkpoint=path, progress=False)
        sizes[n] = ((path / "journal.jsonl").stat().st_size, (path / "state.pt").stat().st_size)
    journal_per_trial = (sizes[400][0] - sizes[40][0]) / 360
    assert journal_per_trial < 300, journal_per_trial  # one short JSON line
    assert abs(sizes[400][1] - sizes[40][1]) < 200, sizes  # the state does not hold the history


def test_files_get_the_users_umask(tmp_path):
    old = os.umask(0o027)
    try:
        evolution().run(3, checkpoint=tmp_path / "c", progress=False)
        History().save(tmp_path / "h.json")
        atomic_write(tmp_path / "raw.bin", b"x")
    finally:
        os.umask(old)
    for path in (tmp_path / "c" / "journal.jsonl", tmp_path / "c" / "state.pt", tmp_path / "h.json",
                 tmp_path / "raw.bin"):
        assert path.stat().st_mode & 0o777 == 0o640, (path, oct(path.stat().st_mode))


def test_state_written_but_journal_line_missing_is_mended(tmp_path):
    """Killed after state.pt was replaced and before the journal line: the state holds the record."""
    path = tmp_path / "evo.ckpt"
    evolution().run(5, checkpoint=path, progress=False)
    journal = path / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-1]))  # as if killed before the last append
    resumed = evolution()
    resumed.resume(path)
    assert len(resumed.history) == 5
    assert journal.read_text() == "".join(lines)
    resumed.run(12, progress=False)
    assert record(resumed.history) == record(evolution().run(12, progress=False))


def test_a_line_cut_off_mid_write_is_dropped_and_mended(tmp_path):
    path = tmp_path / "evo.ckpt"
    evolution().run(5, checkpoint=path, progress=False)
    journal = path / "journal.jsonl"
    full = journal.read_bytes()
    journal.write_bytes(full[:-17])  # the last line lost its end
    resumed = evolution()
    resumed.run(12, checkpoint=path, progress=False)
    assert record(resumed.history) == record(evolution().run(12, progress=False))
    assert journal.read_bytes().startswith(full)


def test_stray_temporary_files_are_removed_on_resume(tmp_path):
    path = tmp_path / "evo.ckpt"
    evolution().run(3, checkpoint=path, progress=False)
    (path / ".state.pt.0123456789ab.tmp").write_bytes(b"half a state")
    evolution().run(4, checkpoint=path, progress=False)
    assert sorted(p.name for p in path.iterdir()) == ["journal.jsonl", "state.pt"]


DAMAGE = {
    "empty journal": lambda p: (p / "journal.jsonl").write_bytes(b""),
    "journal of text": lambda p: (p / "journal.jsonl").write_text("hello\nworld\n"),
    "foreign JSON header": lambda p: (p / "journal.jsonl").write_text('{"format": "other"}\n'),
    "garbage line": lambda p: (p / "journal.jsonl").write_text(
        (p / "journal.jsonl").read_text().splitlines()[0] + "\n{not json\n" + '{"number": 1}\n'),
    "missing state": lambda p: (p / "state.pt").unlink(),
    "truncated state": lambda p: (p / "state.pt").write_bytes((p / "state.pt").read_bytes()[:100]),
    "empty state": lambda p: (p / "state.pt").write_bytes(b""),
    "a pickle of an object": lambda p: (p / "state.pt").write_bytes(pickle.dumps(Checkpoint("x"))),
    "a torch file of another kind": lambda p: torch.save({"weights": torch.ones(3)}, p / "state.pt"),
    "state of another run": lambda p: _swap_state(p),
    "no journal": lambda p: (p / "journal.jsonl").unlink(),
}


def _swap_state(path):
    other = path.parent / "other"
    evolution().run(3, checkpoint=other, progress=False)
    (path / "state.pt").write_bytes((other / "state.pt").read_bytes())


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_or_foreign_checkpoint_is_one_error_naming_the_file(damage, tmp_path):
    path = tmp_path / "evo.ckpt"
    evolution().run(3, checkpoint=path, progress=False)
    DAMAGE[damage](path)
    search = evolution()
    before = search.state_dict()
    with pytest.raises(DamagedFileError) as info:
        search.run(5, checkpoint=path, progress=False)
    message = str(info.value)
    assert str(path) in message and "weights_only=False" not in message, message
    assert len(search.history) == 0 and search.state_dict()["rng"] == before["rng"]


def test_a_file_where_the_folder_should_be_says_how_to_read_an_old_checkpoint(tmp_path):
    path = tmp_path / "old.ckpt"
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(DamagedFileError, match="load_state_dict"):
        evolution().run(3, checkpoint=path, progress=False)


def test_an_empty_folder_is_a_new_checkpoint(tmp_path):
    path = tmp_path / "runs"
    path.mkdir()
    evolution().run(3, checkpoint=path, progress=False)
    assert (path / "journal.jsonl").exists()


@pytest.mark.parametrize("text", ["", "   \n", "{", "[1, 2, 3]", '{"metric": "x"}', "\x00\x01binary"])
def test_damaged_history_file_is_one_error_naming_it(text, tmp_path):
    path = tmp_path / "history.json"
    path.write_text(text)
    with pytest.raises(DamagedFileError) as info:
        History.load(path)
    assert str(path) in str(info.value)


def test_history_file_of_nasnb_0_1_still_loads():
    from pathlib import Path

    history = History.load(Path(__file__).parent / "data" / "legacy-0.1-history.json")
    assert len(history) == 7 and all(t.ok and t.kind == "trial" for t in history)
    assert history.best().value("val_accuracy") == max(t.metrics["val_accuracy"] for t in history)
    assert History.from_json(history.to_json()) == history


def test_checkpoint_of_nasnb_0_1_loads_through_load_state_dict_and_continues_exactly():
    """A one-file checkpoint written by the previous release (tests/data, made with commit e957540)
    resumes and gives the trials the old code gave when it went on uninterrupted."""
    from pathlib import Path

    data = Path(__file__).parent / "data"
    search = evolution(seed=5)
    search.load_state_dict(torch.load(data / "legacy-0.1-evolution.ckpt", weights_only=True))
    assert len(search.history) == 7
    search.run(12, progress=False)
    expected = json.loads((data / "legacy-0.1-evolution-12.json").read_text())
    assert [[t.arch, t.metrics, t.info] for t in search.history] == expected


def test_every_checkpoint_error_is_a_nasnb_error():
    assert issubclass(DamagedFileError, NasnbError) and issubclass(ResumeMismatchError, ValueError)
