"""The README's gallery: each notebook's main widget as JupyterLab shows it, from the browser tests.

tests/browser/ runs every notebook in JupyterLab in a headless chromium, clicks its widget (Step,
or "mutate one edge") and saves a picture of that widget as artifacts/screenshots/<notebook>.widget.png,
with what it shows in <notebook>.widget.txt.
This script turns those pictures into docs/gallery/<notebook>.png (scaled, 256 colours, so the
repository stays small) and writes the README's gallery between its two marker lines:

    bash scripts/test.sh                # or: pytest tests/browser (takes the screenshots)
    python scripts/gallery.py           # copies them to docs/gallery/ and rewrites the README gallery
    python scripts/gallery.py --run     # both: runs the browser tests first
    python scripts/gallery.py --check   # exit 1 if the gallery is missing, stale or out of step

Each gallery picture records the SHA-256 of the notebook it was taken from (a PNG text chunk), so
`--check` (part of the tests) notices a notebook that changed after its picture was taken.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync_notebooks import replace_block, title  # noqa: E402  (the README's blocks, a notebook's title)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
GALLERY = ROOT / "docs" / "gallery"
README = ROOT / "README.md"
MAX_WIDTH = 1000  # pixels; the screenshots are taken 1400 px wide at most
HASH_KEY = "nasnb:notebook-sha256"
CAPTION_KEY = "nasnb:caption"


def notebook_hash(path: Path) -> str:
    """SHA-256 of the notebook's content (parsed, so line endings and key order do not count)."""
    canonical = json.dumps(json.loads(path.read_text(encoding="utf-8")), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def caption(picture: Path) -> str:
    """What the gallery picture shows, as the browser test wrote it (kept in the PNG)."""
    from PIL import Image

    if not picture.exists():
        return "(no picture yet)"
    with Image.open(picture) as image:
        return image.text.get(CAPTION_KEY, "")


def readme_block(notebooks: list[Path]) -> str:
    lines = ["Each notebook's main widget in JupyterLab (headless chromium), just after the browser test",
             "clicked it, at the tests' quick budget (`NASNB_QUICK=1`: a dozen trials of one or two epochs,",
             "hence the low accuracies). Taken by `tests/browser/`, copied here by `python scripts/gallery.py`.",
             ""]
    for path in notebooks:
        lines += [f"**[{title(path)}](notebooks/{path.name})**: {caption(GALLERY / f'{path.stem}.png')}", "",
                  f"![{path.stem}: the main widget after a click](docs/gallery/{path.stem}.png)", ""]
    return "\n".join(lines).rstrip("\n")


def synced_readme(notebooks: list[Path]) -> str:
    return replace_block(README.read_text(), "gallery", readme_block(notebooks), "scripts/gallery.py")


def problems(notebooks: list[Path] | None = None) -> list[str]:
    """What is wrong with the gallery (empty when it is complete, current and in the README)."""
    from PIL import Image

    notebooks = sorted(NOTEBOOK_DIR.glob("*.ipynb")) if notebooks is None else notebooks
    found = []
    for path in notebooks:
        picture = GALLERY / f"{path.stem}.png"
        if not picture.exists():
            found.append(f"docs/gallery/{picture.name} is missing")
            continue
        with Image.open(picture) as image:
            taken_from = image.text.get(HASH_KEY)
        if taken_from != notebook_hash(path):
            found.append(f"docs/gallery/{picture.name} was taken from an older notebooks/{path.name}")
    stems = {p.stem for p in notebooks}
    found += [f"docs/gallery/{p.name} belongs to no notebook" for p in sorted(GALLERY.glob("*.png"))
              if p.stem not in stems]
    if README.read_text() != synced_readme(notebooks):
        found.append("the README's gallery does not list exactly the notebooks")
    return found


def update(notebooks: list[Path]) -> None:
    from PIL import Image, PngImagePlugin

    missing = [p.name for p in notebooks if not all((SCREENSHOTS / f"{p.stem}.widget.{ext}").exists()
                                                    for ext in ("png", "txt"))]
    if missing:
        raise SystemExit(f"no screenshot for {missing} in {SCREENSHOTS}: run the browser tests first "
                         "(`pytest tests/browser`, or `python scripts/gallery.py --run`)")
    older = [p.name for p in notebooks if (SCREENSHOTS / f"{p.stem}.widget.png").stat().st_mtime < p.stat().st_mtime]
    if older:
        raise SystemExit(f"the screenshots of {older} are older than the notebooks: run the browser tests again "
                         "(`python scripts/gallery.py --run`)")
    GALLERY.mkdir(parents=True, exist_ok=True)
    stems = {p.stem for p in notebooks}
    for old in GALLERY.glob("*.png"):
        if old.stem not in stems:
            old.unlink()
    for path in notebooks:
        with Image.open(SCREENSHOTS / f"{path.stem}.widget.png") as shot:
            image = shot.convert("RGB")
        if image.width > MAX_WIDTH:
            image = image.resize((MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)), Image.LANCZOS)
        info = PngImagePlugin.PngInfo()
        info.add_text(HASH_KEY, notebook_hash(path))
        info.add_text(CAPTION_KEY, (SCREENSHOTS / f"{path.stem}.widget.txt").read_text().strip(), zip=False)
        image.quantize(colors=256).save(GALLERY / f"{path.stem}.png", optimize=True, pnginfo=info)
        print(f"docs/gallery/{path.stem}.png  {(GALLERY / f'{path.stem}.png').stat().st_size / 1024:.0f} KiB")
    README.write_text(synced_readme(notebooks))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="change nothing; exit 1 if the gallery is not current")
    group.add_argument("--run", action="store_true", help="run the browser tests first (a few minutes)")
    args = parser.parse_args(argv)
    notebooks = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    if args.check:
        found = problems(notebooks)
        for problem in found:
            print(f"{problem}  (run: python scripts/gallery.py --run)")
        return 1 if found else 0
    if args.run:
        subprocess.run([sys.executable, "-m", "pytest", "-q", str(ROOT / "tests" / "browser"),
                        "-k", "test_notebook_in_jupyterlab"], cwd=ROOT, check=True)
    update(notebooks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
