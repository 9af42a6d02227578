"""The notebooks' Colab/Binder badges and install cell, and the README's badges, agree with the
repository address in pyproject.toml (scripts/sync_notebooks.py writes them; these tests check)."""
import importlib.util
import io
import json
import re
import shutil
import sys
import types
from contextlib import redirect_stdout
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

spec = importlib.util.spec_from_file_location("sync_notebooks", ROOT / "scripts" / "sync_notebooks.py")
sync = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync)


def cells(path):
    nb = json.loads(path.read_text())
    return [dict(c, source="".join(c["source"])) for c in nb["cells"]]


def links(markdown):
    """(label, url) of each markdown link whose text is an image badge: [![label](img)](url)."""
    return re.findall(r"\[!\[([^\]]+)\]\([^)]+\)\]\(([^)]+)\)", markdown)


def test_everything_generated_is_up_to_date():
    stale = sync.out_of_date()
    assert not stale, f"out of date with pyproject's Repository: {stale}; run: python scripts/sync_notebooks.py"


def test_repository_comes_from_pyproject_and_bad_addresses_are_refused(tmp_path):
    url, owner, name = sync.repository()
    assert url == f"https://github.com/{owner}/{name}"
    moved = tmp_path / "pyproject.toml"
    moved.write_text('[project]\nname = "nasnb"\n[project.urls]\nRepository = "https://github.com/someone/nas-course.git"\n')
    assert sync.repository(moved) == ("https://github.com/someone/nas-course", "someone", "nas-course")
    moved.write_text('[project]\nname = "nasnb"\n[project.urls]\nRepository = "https://gitlab.com/someone/x"\n')
    with pytest.raises(SystemExit, match="not a GitHub address"):
        sync.repository(moved)
    moved.write_text('[project]\nname = "nasnb"\n')
    with pytest.raises(SystemExit, match=r"\[project.urls\] Repository"):
        sync.repository(moved)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_starts_with_badges_that_open_this_notebook(path):
    _, owner, name = sync.repository()
    first = cells(path)[0]
    assert first["cell_type"] == "markdown" and first["id"] == sync.BADGES_ID
    badges = dict(links(first["source"]))
    assert set(badges) == {"Open In Colab", "Launch Binder"}

    colab = urlparse(badges["Open In Colab"])
    assert colab.scheme == "https" and colab.netloc == "colab.research.google.com"
    parts = colab.path.split("/")  # /github/OWNER/NAME/blob/BRANCH/notebooks/FILE
    assert parts[1:6] == ["github", owner, name, "blob", "main"]
    assert ROOT.joinpath(*parts[6:]) == path, "the Colab badge opens another file"

    binder = urlparse(badges["Launch Binder"])
    assert binder.netloc == "mybinder.org" and binder.path == f"/v2/gh/{owner}/{name}/main"
    labpath = parse_qs(binder.query)["labpath"]
    assert [ROOT / unquote(p) for p in labpath] == [path], "Binder must open JupyterLab on this notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_second_cell_is_the_setup_cell(path):
    second = cells(path)[1]
    assert second["cell_type"] == "code" and second["id"] == sync.SETUP_ID
    assert second["source"] == sync.setup_source(sync.repository()[0])


def run_setup_cell(monkeypatch, *, nasnb_found, colab=False):
    """Run the set-up cell's code with find_spec and subprocess.run recorded (no pip is run)."""
    import importlib.util as iu
    import subprocess
    calls = []
    real_find_spec = iu.find_spec
    monkeypatch.setattr(iu, "find_spec", lambda n, *a: (real_find_spec(n, *a) if nasnb_found or n != "nasnb" else None))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    out = io.StringIO()
    code = compile(sync.setup_source(sync.repository()[0]), "<set-up cell>", "exec")
    namespace = {}
    with redirect_stdout(out):
        exec(code, namespace)  # the notebook cell, run as Jupyter would run it
    return calls, out.getvalue(), namespace


def test_setup_cell_installs_nasnb_from_the_repository_when_missing(monkeypatch):
    url, _, _ = sync.repository()
    calls, printed, namespace = run_setup_cell(monkeypatch, nasnb_found=False)
    assert len(calls) == 1
    cmd, kwargs = calls[0]
    assert cmd[:5] == [sys.executable, "-m", "pip", "install", "--quiet"] and kwargs == {"check": True}
    requirement = Requirement(cmd[5])  # a valid PEP 508 requirement: nasnb from this repository
    assert requirement.name == "nasnb" and requirement.url == f"git+{url}@main"
    assert str(namespace["DEVICE"]) in printed and "training will run on" in printed


def test_setup_cell_does_nothing_where_nasnb_is_installed_and_reports_the_device(monkeypatch):
    import nasnb
    calls, printed, namespace = run_setup_cell(monkeypatch, nasnb_found=True)
    assert calls == []
    assert namespace["DEVICE"] == nasnb.train.pick_device("auto")
    assert "Change runtime type" not in printed  # not on Colab


def test_setup_cell_suggests_a_gpu_on_colab_without_one(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _, printed, _ = run_setup_cell(monkeypatch, nasnb_found=True, colab=True)
    assert "Runtime > Change runtime type > GPU" in printed


def test_check_finds_a_stale_notebook_and_sync_repairs_it(tmp_path):
    copy = tmp_path / NOTEBOOKS[0].name
    shutil.copy(NOTEBOOKS[0], copy)
    assert sync.out_of_date([copy]) == []
    nb = json.loads(copy.read_text())
    nb["cells"][0]["source"] = ["[![Open In Colab](x)](https://colab.research.google.com/github/old/place/blob/main/notebooks/x.ipynb)"]
    code = next(c for c in nb["cells"][2:] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["left over\n"]}]
    code["execution_count"] = 3
    copy.write_text(json.dumps(nb))
    assert sync.out_of_date([copy]) == [str(copy)]
    repaired = json.loads(sync.synced_notebook(copy))
    assert [c["id"] for c in repaired["cells"]].count(sync.BADGES_ID) == 1  # replaced, not added twice
    assert all(not c.get("outputs") and not c.get("execution_count") for c in repaired["cells"])
    original = [c for c in json.loads(NOTEBOOKS[0].read_text())["cells"]]
    assert [c["id"] for c in repaired["cells"]] == [c["id"] for c in original]


def test_readme_has_the_badges_and_a_row_per_notebook():
    readme = (ROOT / "README.md").read_text()
    _, owner, name = sync.repository()
    for path in NOTEBOOKS:
        assert sync.colab_url(owner, name, path.name) in readme, f"README has no Colab badge for {path.name}"
        assert sync.binder_url(owner, name, path.name) in readme
        assert f"](notebooks/{path.name})" in readme


@pytest.mark.slow
def test_setup_cell_installs_nasnb_into_a_python_that_lacks_it(tmp_path):
    """The set-up cell for real, as on a fresh Colab runtime: a new venv that sees this environment's
    packages (torch, ...; as Colab has its own) but not nasnb. Only the address is swapped for a
    wheel built from this checkout (no network here); find_spec, pip, the import and the device
    report run as written. PIP_NO_INDEX proves nothing else had to be fetched."""
    import os
    import subprocess

    from venvs import borrowing_venv

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("nasnb-*.whl")
    python, site_dir = borrowing_venv(tmp_path / "fresh")
    probe = "import importlib.util; print(importlib.util.find_spec('nasnb') is None)"
    found = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert found.stdout.strip() == "True"  # (run outside the checkout, whose nasnb/ `-c` would import)

    url, _, _ = sync.repository()
    cell = sync.setup_source(url).replace(sync.install_requirement(url), f"nasnb @ {wheel.as_uri()}")
    assert cell != sync.setup_source(url)
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    run = subprocess.run([python, "-c", cell], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "training will run on: cpu" in run.stdout or "training will run on: cuda" in run.stdout
    installed = subprocess.run([python, "-c", "import nasnb; print(nasnb.__file__)"], capture_output=True,
                               text=True, check=True, cwd=tmp_path).stdout
    assert installed.startswith(str(site_dir)), f"nasnb was not installed into the new Python: {installed}"
