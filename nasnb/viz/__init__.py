"""Pictures of NAS: pure data functions (tested) and the renderers that draw them.

cells.py   the cell DAGs of a space, like the papers' figures (graphviz, or matplotlib without `dot`)
search.py  what a search did: populations, best-so-far curves, a controller's policy

Importing nasnb.viz loads neither matplotlib nor graphviz; each renderer imports what it draws with.
"""
from nasnb.viz.cells import (
    CELL_TITLES, FALLBACK_COLOR, OP_COLORS, ROLE_COLORS, cell_data, cell_image, draw_cell, has_dot, op_color,
)

__all__ = [
    "CELL_TITLES", "FALLBACK_COLOR", "OP_COLORS", "ROLE_COLORS",
    "cell_data", "cell_image", "draw_cell", "has_dot", "op_color",
]
