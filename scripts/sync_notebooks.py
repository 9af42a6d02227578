"""Keep the notebooks' launch buttons and install cell, and the README's badges, in step with pyproject.

Every notebook in notebooks/ starts with two generated cells:

1. "Open in Colab" and "Launch Binder" badges for that notebook;
2. a set-up cell that installs nasnb when the kernel cannot import it (a fresh Colab runtime),
   does nothing where nasnb is installed (Binder, `scripts/lab.sh`, `nasnb lab`), and reports the
   device that training will use (`device="auto"`: CUDA, then Apple's MPS, then the CPU).

Both are written from the repository address in pyproject.toml ([project.urls] Repository), so
moving the repository is a one-line change followed by

    python scripts/sync_notebooks.py          # rewrite the generated cells and the README table
    python scripts/sync_notebooks.py --check  # exit 1, naming what is out of date (the tests call it)

The script also clears outputs, as notebooks are committed without them. Everything else in a
notebook is left as it is.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from urllib.parse import quote

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
README = ROOT / "README.md"
BRANCH = "main"

BADGES_ID, SETUP_ID = "nasnb-badges", "nasnb-setup"  # the generated cells' ids (nbformat 4.5)

COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
BINDER_BADGE = "https://mybinder.org/badge_logo.svg"

SETUP_TEMPLATE = '''\
# Set-up. On Colab (or any kernel without nasnb) this installs it from {repository};
# where nasnb is installed already (Binder, scripts/lab.sh, `nasnb lab`) it does nothing.
import importlib.util, subprocess, sys

if importlib.util.find_spec("nasnb") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "{requirement}"], check=True)

import nasnb

# Training uses device="auto" everywhere: a CUDA GPU if there is one, then Apple's MPS, then the CPU.
DEVICE = nasnb.train.pick_device("auto")
print("nasnb", nasnb.__version__, "| training will run on:", DEVICE)
if "google.colab" in sys.modules and DEVICE.type != "cuda":
    print("On Colab, Runtime > Change runtime type > GPU makes the long runs faster (optional).")'''


# ---------------------------------------------------------------------------- what is generated

def repository(pyproject: Path = ROOT / "pyproject.toml") -> tuple[str, str, str]:
    """(url, owner, name) of the GitHub repository named in pyproject's [project.urls] Repository."""
    urls = tomllib.loads(pyproject.read_text())["project"].get("urls", {})
    url = urls.get("Repository", "")
    match = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?", url)
    if not match:
        raise SystemExit(f"pyproject.toml: [project.urls] Repository = {url!r} is not a GitHub address "
                         "like 'https://github.com/OWNER/NAME'; Colab and Binder open notebooks from GitHub")
    owner, name = match.groups()
    return f"https://github.com/{owner}/{name}", owner, name


def install_requirement(url: str) -> str:
    """The PEP 508 requirement the set-up cell installs: nasnb from the repository's main branch."""
    return f"nasnb @ git+{url}@{BRANCH}"


def colab_url(owner: str, name: str, notebook: str) -> str:
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/{BRANCH}/notebooks/{notebook}"


def binder_url(owner: str, name: str, notebook: str) -> str:
    """mybinder.org builds the repository (binder/) and opens JupyterLab on this notebook."""
    return f"https://mybinder.org/v2/gh/{owner}/{name}/{BRANCH}?labpath={quote('notebooks/' + notebook, safe='')}"


def badges(owner: str, name: str, notebook: str) -> str:
    return (f"[![Open In Colab]({COLAB_BADGE})]({colab_url(owner, name, notebook)}) "
            f"[![Launch Binder]({BINDER_BADGE})]({binder_url(owner, name, notebook)})")


def setup_source(url: str) -> str:
    return SETUP_TEMPLATE.format(repository=url, requirement=install_requirement(url))


def generated_cells(notebook: str) -> list[dict]:
    url, owner, name = repository()
    return [
        {"cell_type": "markdown", "id": BADGES_ID, "metadata": {}, "source": badges(owner, name, notebook)},
        {"cell_type": "code", "id": SETUP_ID, "metadata": {}, "execution_count": None, "outputs": [],
         "source": setup_source(url)},
    ]


def title(path: Path) -> str:
    """The notebook's first level-1 heading."""
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise SystemExit(f"{path}: no '# Title' heading in any markdown cell")


def replace_block(text: str, marker: str, block: str, script: str = "scripts/sync_notebooks.py") -> str:
    """`text` with what lies between the lines `<!-- marker:start (script) -->` and
    `<!-- marker:end -->` replaced by `block`: the generated parts of the README."""
    start, end = f"<!-- {marker}:start ({script}) -->", f"<!-- {marker}:end -->"
    if text.count(start) != 1 or text.count(end) != 1:
        raise SystemExit(f"README.md needs one {start!r} line and one {end!r} line around the {marker}")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{block}\n{end}{tail}"


def readme_table(notebooks: list[Path]) -> str:
    _, owner, name = repository()
    rows = ["| Notebook | Run it in the cloud |", "| --- | --- |"]
    for path in notebooks:
        rows.append(f"| [{title(path)}](notebooks/{path.name}) | {badges(owner, name, path.name)} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------- syncing

def synced_notebook(path: Path) -> str:
    """The notebook's text with the generated cells in front and outputs cleared."""
    nb = json.loads(path.read_text())
    generated = generated_cells(path.name)
    # a copy of a generated cell under another id (pasted from another notebook) goes too
    copies = {"".join(c["source"]) for c in generated}
    cells = [c for c in nb["cells"] if c.get("id") not in (BADGES_ID, SETUP_ID) and "".join(c["source"]) not in copies]
    for cell in cells:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        if isinstance(cell["source"], list):
            cell["source"] = "".join(cell["source"])
    nb["cells"] = generated + cells
    nb.setdefault("metadata", {}).pop("widgets", None)  # saved widget state is an output too
    for cell in nb["cells"]:  # the layout Jupyter itself writes: a list of lines
        cell["source"] = cell["source"].splitlines(keepends=True)
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def readme_blocks(notebooks: list[Path]) -> dict[str, str]:
    """The README's generated blocks by marker name: the badges under the title (the first
    notebook) and the table of notebooks with theirs."""
    _, owner, name = repository()
    return {"badges": badges(owner, name, notebooks[0].name), "notebooks": readme_table(notebooks)}


def synced_readme(notebooks: list[Path]) -> str:
    text = README.read_text()
    for marker, block in readme_blocks(notebooks).items():
        text = replace_block(text, marker, block)
    return text


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def out_of_date(notebooks: list[Path] | None = None) -> list[str]:
    """Files whose generated parts differ from what pyproject says (empty when all agree)."""
    notebooks = sorted(NOTEBOOK_DIR.glob("*.ipynb")) if notebooks is None else notebooks
    stale = [_shown(p) for p in notebooks if p.read_text() != synced_notebook(p)]
    if README.read_text() != synced_readme(sorted(NOTEBOOK_DIR.glob("*.ipynb"))):
        stale.append("README.md")
    return stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    notebooks = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    if args.check:
        stale = out_of_date(notebooks)
        for name in stale:
            print(f"out of date: {name}  (run: python scripts/sync_notebooks.py)")
        return 1 if stale else 0
    for path in notebooks:
        text = synced_notebook(path)
        if path.read_text() != text:
            path.write_text(text)
            print("updated", _shown(path))
    text = synced_readme(notebooks)
    if README.read_text() != text:
        README.write_text(text)
        print("updated README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
