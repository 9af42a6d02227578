"""Pictures of NAS: pure data functions (tested) and the renderers that draw them.

cells.py   the cell DAGs of a space, like the papers' figures (graphviz, or matplotlib without `dot`)
search.py  what a search did: progress (any search), populations, best-so-far curves
policy.py  a REINFORCE controller's per-decision probabilities, entropy, reward and baseline
qtable.py  a MetaQNN agent's Q-values along its path, ε and rewards
program.py AutoML-Zero's best program as code: its lines, those changed since the previous best, dead code
rungs.py   successive halving and Hyperband: every trial at its budget, who was promoted, who was cut
alphas.py  a one-shot search's softmax(α) per edge, their history, the derived cell (DARTS)
live.py    the same views for a dashboard: drawn once, then their artists moved in place

Importing nasnb.viz loads neither matplotlib nor graphviz; each renderer imports what it draws with.
"""
from nasnb.viz.alphas import LiveAlphas, alpha_data, plot_alphas
from nasnb.viz.cells import (
    CELL_TITLES, FALLBACK_COLOR, OP_COLORS, ROLE_COLORS, cell_data, cell_image, draw_cell, has_dot, op_color,
)
from nasnb.viz.policy import plot_policy, policy_data
from nasnb.viz.program import plot_program, program_data, program_html
from nasnb.viz.qtable import plot_qtable, qtable_data
from nasnb.viz.rungs import LiveRungs, plot_rungs, rung_data
from nasnb.viz.search import (
    best_so_far_data, plot_best_so_far, plot_population, plot_progress, population_data, progress_data,
)

__all__ = [
    "CELL_TITLES", "FALLBACK_COLOR", "OP_COLORS", "ROLE_COLORS",
    "cell_data", "cell_image", "draw_cell", "has_dot", "op_color",
    "progress_data", "plot_progress", "population_data", "plot_population", "best_so_far_data", "plot_best_so_far",
    "policy_data", "plot_policy", "qtable_data", "plot_qtable", "program_data", "program_html",
    "plot_program", "rung_data", "plot_rungs", "LiveRungs",
    "alpha_data", "plot_alphas", "LiveAlphas",
]
