"""A search on disk: an append-only journal of its records and a small state file.

The one place that writes a search to disk and reads it back. A checkpoint is a folder:

    evo.ckpt/
        journal.jsonl   line 1, a header: {"format": "nasnb-journal", "version": 1, "run": id,
                        "settings": the search's settings}; then one JSON line per record (Trial
                        or Step), appended as the search records it. Never rewritten.
        state.pt        what the search needs to continue from its last record: rng states, the
                        strategy's own state (population, controller), proposals asked and not yet
                        told, how many records it covers, and the records the journal may still
                        lack. torch.save format, read with `torch.load(weights_only=True)`;
                        rewritten atomically (a temporary file and a rename) after a record, or
                        about once a second (below).

A record is written to the journal before its `tell` returns; the state file is rewritten after
it only when the search cannot *replay* (below), so a checkpointed run writes, per record, one
journal line, plus at most one small state file: the cost of a record does not grow with the
length of the run.

Surviving a kill only needs the data handed to the operating system; surviving a power cut needs
it on the disk (fsync, about 7 ms a call on these machines: more than a fast trial takes). So the
files are synced as a group, at most every `SYNC_SECONDS` seconds (or `SYNC_RECORDS` records, for a
state file that carries them), and state.pt keeps every record since the last sync: after a power
cut the journal is whole up to that sync, and state.pt holds what followed. A kill -9 loses no told
record; a power cut, at most a second.

Why a kill -9 at any moment loses nothing that was told, in the two ways a record is written:

* state first: the record is written into state.pt (atomically: the old state or the new one,
  never half), then appended to the journal. Killed before the rename, the record was not yet
  recorded (the `tell` had not returned) and the old state and journal agree; killed after it, the
  journal lacks the newest lines, which state.pt holds, and `read` appends them.
* journal only (`append(records)` without a state): a search whose proposals are a function of its
  state (random search, evolution, REINFORCE: `Strategy.replayable`) writes state.pt only when a
  sync is due, about once a second, and at the end of a run. The journal then holds records that
  state.pt does not cover; `read` returns them (`Saved.covered` says how many state.pt covers) and
  the search *replays* them on resume: from the older state it asks again, gets the same
  proposals, and is told the journal's results, which gives exactly the state it had. On a table
  lookup a trial takes about 0.1 ms, and a state file per trial (torch.save, a temporary file and
  a rename: 0.7-1 ms of CPU here, against 0.05 ms for a journal line) would be most of the run.

A line cut off mid-write is dropped, and the temporary file of an interrupted rename is deleted
when the checkpoint is next read.

`read` refuses, with one `DamagedFileError` naming the file, anything it cannot trust: a file
where a folder should be (a checkpoint of nasnb 0.1 was one torch file), a journal or state of
another kind, a state of another run, damaged lines, counts that do not fit.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path

import torch

from nasnb.errors import DamagedFileError
from nasnb.history import atomic_write, remove_stray_temporaries

JOURNAL, STATE = "journal.jsonl", "state.pt"
SYNC_RECORDS, SYNC_SECONDS = 32, 1.0  # fsync at least this often (records, seconds)
JOURNAL_FORMAT, STATE_FORMAT, VERSION = "nasnb-journal", "nasnb-state", 1


def dumps(record: dict) -> str:
    """One record as one JSON line (NaN allowed: a failed trial may have reported one)."""
    return json.dumps(record, sort_keys=True, allow_nan=True)


@dataclasses.dataclass
class Saved:
    """What `Checkpoint.read` found: the settings, every record (as dicts) and the state."""

    settings: dict
    records: list
    state: dict | None  # None: no record was ever written after the header
    covered: int | None = None  # how many of `records` the state covers (None: all); the rest are replayed


class Checkpoint:
    """A checkpoint folder; `read()` it to resume, `create()` and `append()` to write it."""

    def __init__(self, path):
        self.path = Path(path)
        self.journal = self.path / JOURNAL
        self.state_file = self.path / STATE
        self.run: str | None = None  # the run id, once read or created
        self.count = 0  # records in the journal
        self.covered = 0  # records the state file covers (fewer than `count` after journal-only appends)
        self._unsynced: list = []  # records appended since the files were last fsynced
        self._synced_at = time.monotonic()

    def __repr__(self) -> str:
        return f"Checkpoint({str(self.path)!r}, {self.count} records)"

    def exists(self) -> bool:
        """True when `path` holds something (an empty folder does not count: it is a new checkpoint)."""
        return self.path.is_file() or (self.path.is_dir() and any(self.path.iterdir()))

    # ---------------------------------------------------------------- writing

    def create(self, settings: dict, records: list, state: dict) -> None:
        """Write a new checkpoint holding `records` (dicts) and `state`. The folder is built under a
        temporary name and renamed into place, so a half-made checkpoint is never seen."""
        if self.exists():
            raise FileExistsError(f"{self.path} already exists; read() it, or choose another path")
        remove_stray_temporaries(self.path)  # what an earlier create() left when it was killed
        self.run = uuid.uuid4().hex
        tmp = self.path.parent / f".{self.path.name}.{uuid.uuid4().hex[:12]}.tmp"
        tmp.mkdir(parents=True)
        try:
            header = {"format": JOURNAL_FORMAT, "version": VERSION, "run": self.run, "settings": settings}
            lines = [dumps(header)] + [dumps(r) for r in records]
            with open(tmp / JOURNAL, "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
                f.flush()
                os.fsync(f.fileno())
            atomic_write(tmp / STATE, self._state_bytes(state, len(records), unjournaled=[]))
            if self.path.is_dir():
                self.path.rmdir()  # an empty folder the user made: replaced by ours
            os.replace(tmp, self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.count = self.covered = len(records)

    def sync_due(self) -> bool:
        """True when the files were last synced `SYNC_SECONDS` ago or more."""
        return time.monotonic() - self._synced_at >= SYNC_SECONDS

    def append(self, records: list, state: dict | None = None) -> None:
        """Record `records` (the dicts the journal lacks, in order) and the state after them.

        Without a state, only the journal lines are written: the state file then lags behind, and
        `read` hands the newer records to the search to replay (module docstring). Only a search
        that can replay them may do that, and it must write its state when `sync_due()`."""
        if not records:
            return
        if records[0]["number"] != self.count:
            raise ValueError(f"{self.journal} holds {self.count} records; cannot append record {records[0]['number']}")
        if state is None:
            self._append_lines(records, sync=False)
            self._unsynced += records
            return
        self._write_state(state, self.count + len(records), records)

    @property
    def lagging(self) -> bool:
        """True when the journal holds records the state file does not cover (journal-only appends)."""
        return self.covered < self.count

    def flush(self, state: dict) -> None:
        """Bring the state file up to the journal (after journal-only appends): the end of a run."""
        if self.lagging:
            self._write_state(state, self.count, [])

    def _write_state(self, state: dict, total: int, records: list) -> None:
        """state.pt covering `total` records, then the journal lines of `records` (the newest)."""
        sync = self.sync_due() or len(self._unsynced) + len(records) >= SYNC_RECORDS
        if sync and self._unsynced:  # journal-only lines first reach the disk: state.pt need not carry them
            self._sync_journal()
        self._unsynced += records
        # state.pt first: it holds every record the disk may not have yet (module docstring)
        atomic_write(self.state_file, self._state_bytes(state, total, unjournaled=self._unsynced), sync=sync)
        self.covered = total
        if records:
            self._append_lines(records, sync=sync)
        if sync:
            self._unsynced, self._synced_at = [], time.monotonic()

    def _append_lines(self, records: list, sync: bool = True) -> None:
        with open(self.journal, "a", encoding="utf-8") as f:
            f.write("".join(dumps(r) + "\n" for r in records))
            f.flush()
            if sync:
                os.fsync(f.fileno())
        self.count += len(records)

    def _sync_journal(self) -> None:
        with open(self.journal, "rb") as f:
            os.fsync(f.fileno())
        self._unsynced = []

    def _state_bytes(self, state: dict, total: int, unjournaled: list) -> bytes:
        payload = {"format": STATE_FORMAT, "version": VERSION, "run": self.run, "records": total,
                   "unjournaled": json.dumps(unjournaled, allow_nan=True), "state": state}
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        return buffer.getvalue()

    # ---------------------------------------------------------------- reading

    def read(self) -> Saved:
        """Everything the checkpoint holds, checked, after mending what a kill can leave behind."""
        if self.path.is_file():
            raise DamagedFileError(
                f"{self.path} is a file, not a nasnb checkpoint folder. (A checkpoint of nasnb 0.1 was one "
                f"torch file: read it with search.load_state_dict(torch.load(path, weights_only=True)), "
                f"then pass a new checkpoint path.)")
        remove_stray_temporaries(self.state_file)
        if not self.journal.is_file():
            raise DamagedFileError(f"{self.path} is not a nasnb checkpoint: it has no {JOURNAL}")
        header, records = self._read_journal()
        self.run = header["run"]
        state, total, unjournaled = self._read_state(len(records))
        self.count = len(records)
        if unjournaled:  # killed after the state was written, before (all) its journal lines
            self._append_lines(unjournaled)
            records += unjournaled
        self.covered = min(total, len(records))
        return Saved(header["settings"], records, state, covered=self.covered)

    def drop_records(self, start: int) -> None:
        """Cut the journal back to its first `start` records, with a warning: records the state
        file does not cover and the search could not replay (e.g. a state file older than the
        journal, as a power cut can leave, of a search that cannot replay)."""
        if start >= self.count:
            return
        lines = self.journal.read_bytes().split(b"\n")  # header, records..., ""
        with open(self.journal, "r+b") as f:
            f.truncate(sum(len(line) + 1 for line in lines[:1 + start]))
        warnings.warn(f"{self.journal} held {self.count - start} records beyond its state.pt that this search "
                      f"could not replay (its state file is older, e.g. after a power cut); they were dropped and "
                      f"will be evaluated again", stacklevel=3)
        self.count = self.covered = start

    def _read_journal(self) -> tuple[dict, list]:
        data = self.journal.read_bytes()
        if not data.strip():
            raise DamagedFileError(f"{self.journal} is empty: not a nasnb journal (was it cut off while written?)")
        complete, _, torn = data.rpartition(b"\n")
        if torn:  # the last line was cut off mid-write: that record was never recorded
            with open(self.journal, "r+b") as f:
                f.truncate(len(complete) + 1 if complete else 0)
        lines = complete.split(b"\n") if complete else []
        if not lines:
            raise DamagedFileError(f"{self.journal} has no complete header line: not a nasnb journal")
        parsed = []
        for number, line in enumerate(lines, start=1):
            try:
                parsed.append(json.loads(line.decode("utf-8")))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                kind = "its header" if number == 1 else f"line {number}"
                raise DamagedFileError(f"{self.journal} is damaged or of another kind: {kind} is not JSON "
                                       f"({type(err).__name__})") from None
        header, records = parsed[0], parsed[1:]
        if not (isinstance(header, dict) and header.get("format") == JOURNAL_FORMAT and "run" in header
                and isinstance(header.get("settings"), dict)):
            raise DamagedFileError(f"{self.journal} is not a nasnb journal (its first line is not a nasnb header)")
        if header.get("version") != VERSION:
            raise DamagedFileError(f"{self.journal} is a nasnb journal of version {header.get('version')!r}; "
                                   f"this nasnb reads version {VERSION}")
        for k, record in enumerate(records):
            if not (isinstance(record, dict) and record.get("number") == k):
                raise DamagedFileError(f"{self.journal} is damaged: line {k + 2} is not record number {k}")
        return header, records

    def _read_state(self, journaled: int) -> tuple[dict | None, int, list]:
        """(the state, how many records it covers, those of them the journal lacks)."""
        if not self.state_file.exists():
            if journaled:
                raise DamagedFileError(f"{self.state_file} is missing, but {self.journal} holds {journaled} records")
            return None, 0, []
        try:
            with warnings.catch_warnings():  # torch warns about foreign pickles before refusing them
                warnings.simplefilter("ignore")
                payload = torch.load(self.state_file, weights_only=True)
        except Exception as err:  # torch's own message would suggest weights_only=False: never do that
            raise DamagedFileError(f"{self.state_file} is damaged or not a nasnb state file "
                                   f"({type(err).__name__} while reading it)") from None
        if not (isinstance(payload, dict) and payload.get("format") == STATE_FORMAT):
            raise DamagedFileError(f"{self.state_file} is not a nasnb state file")
        if payload.get("run") != self.run:
            raise DamagedFileError(f"{self.state_file} belongs to another run than {self.journal}: "
                                   "the two files of a checkpoint folder were mixed")
        try:
            unjournaled = json.loads(payload["unjournaled"])
            total = int(payload["records"])
        except (KeyError, TypeError, ValueError):
            raise DamagedFileError(f"{self.state_file} is damaged: its record count is unreadable") from None
        missing = total - journaled
        if missing < 0:  # the journal holds newer records: written journal-only, or a power cut lost the newer state
            return payload["state"], total, []
        if missing > len(unjournaled):
            raise DamagedFileError(f"{self.state_file} covers {total} records but {self.journal} holds {journaled}: "
                                   "the checkpoint was changed by hand or copied in pieces")
        tail = unjournaled[len(unjournaled) - missing:] if missing else []
        if [r.get("number") for r in tail] != list(range(journaled, total)):
            raise DamagedFileError(f"{self.state_file} is damaged: its unjournaled records are misnumbered")
        return payload["state"], total, tail
