"""The README gallery (scripts/gallery.py): one picture per notebook, taken by the browser tests from
the notebook as it is now, and listed in the README."""
import importlib.util
import json
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

spec = importlib.util.spec_from_file_location("gallery", ROOT / "scripts" / "gallery.py")
gallery = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gallery)


def test_gallery_is_complete_current_and_in_the_readme():
    found = gallery.problems()
    assert not found, "\n".join(found) + "\nrun: python scripts/gallery.py --run (browser tests, then the gallery)"


def test_every_picture_is_small_and_shown_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        picture = ROOT / "docs" / "gallery" / f"{path.stem}.png"
        assert picture.stat().st_size < 200 * 1024, f"{picture.name} is {picture.stat().st_size} bytes"
        with Image.open(picture) as image:
            assert image.width <= gallery.MAX_WIDTH and image.height > 50
            caption = image.text.get(gallery.CAPTION_KEY, "")
        assert len(caption) > 20, f"{picture.name} carries no caption from the browser test"
        assert f"**: {caption}" in readme
        assert f"](docs/gallery/{path.stem}.png)" in readme and f"](notebooks/{path.name})" in readme


def test_a_changed_notebook_makes_its_picture_stale(tmp_path):
    copy = tmp_path / NOTEBOOKS[-1].name
    nb = json.loads(NOTEBOOKS[-1].read_text())
    nb["cells"].append({"cell_type": "markdown", "id": "added", "metadata": {}, "source": ["one more cell"]})
    copy.write_text(json.dumps(nb, indent=1))
    found = gallery.problems([copy])
    assert any("was taken from an older" in p for p in found), found
