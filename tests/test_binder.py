"""binder/ builds what pyproject.toml describes: same dependencies, CPU torch, graphviz, a safe postBuild."""
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"


def requirement_names(lines) -> dict:
    """{normalised name: full requirement} for requirement lines (options and comments skipped)."""
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name = re.match(r"[A-Za-z0-9_.\-]+", line).group(0)
            found[re.sub(r"[-_.]+", "-", name).lower()] = line
    return found


def test_binder_installs_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = requirement_names(project["dependencies"] + project["optional-dependencies"]["lab"])
    binder = requirement_names((BINDER / "requirements.txt").read_text().splitlines())
    assert set(wanted) <= set(binder), f"binder/requirements.txt lacks {sorted(set(wanted) - set(binder))}"
    for name, requirement in wanted.items():
        assert binder[name].replace(" ", "") == requirement.replace(" ", ""), \
            f"{name}: pyproject says {requirement!r}, binder says {binder[name]!r}"


def test_binder_uses_cpu_torch_and_graphviz():
    text = (BINDER / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    assert "graphviz" in (BINDER / "apt.txt").read_text().split()
    version = (BINDER / "runtime.txt").read_text().strip()
    major, minor = map(int, re.fullmatch(r"python-(\d+)\.(\d+)", version).groups())
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = re.fullmatch(r">=(\d+\.\d+),<(\d+\.\d+)", requires).groups()
    assert tuple(map(int, low.split("."))) <= (major, minor) < tuple(map(int, high.split(".")))


def test_postbuild_is_valid_bash_that_stops_on_errors_and_installs_nasnb():
    post = BINDER / "postBuild"
    text = post.read_text()
    assert text.startswith("#!/bin/bash") and post.stat().st_mode & 0o111, "postBuild must be an executable script"
    assert re.search(r"^set -e", text, re.M), "without set -e a failed step does not stop the Binder build"
    subprocess.run(["bash", "-n", str(post)], check=True)  # syntax check
    assert re.search(r"pip install .*--no-deps \.", text)
