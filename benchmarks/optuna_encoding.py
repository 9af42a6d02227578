"""How OptunaSearch should encode a space's choices for TPE: categorical option indices or integers.

    python benchmarks/optuna_encoding.py             # ToySpace(6 positions, 4 options), 40 trials, 20 seeds

Prints, for each sampler setting and encoding, the mean over seeds of the best trial's score
(positions matching the optimum, out of 6) after the budget, beside random search with the same
seeds. Optuna is needed (pip install "nasnb[optuna]").
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    import optuna
    import torch

    from nasnb.spaces.toy import ToySpace
    from nasnb.strategies import OptunaSearch, RandomSearch

    torch.set_num_threads(1)
    space = ToySpace(length=6, options=4)

    def best(search) -> float:
        return search.run(args.budget, progress=False).best().value("val_accuracy") * 6

    rows = [("multivariate TPE (default)", True, 10, "categorical"), ("multivariate TPE", True, 10, "int"),
            ("independent TPE", False, 10, "categorical"), ("independent TPE, 3 start-up", False, 3, "categorical")]
    print(f"ToySpace(6, 4), {args.budget} trials, {args.seeds} seeds: mean best score (of 6)")
    for name, mv, startup, dist in rows:
        scores = [best(OptunaSearch(space, space.evaluate, optuna.samplers.TPESampler(
            seed=s, n_startup_trials=startup, multivariate=mv), distribution=dist)) for s in range(args.seeds)]
        print(f"{name:32s} {dist:12s} {np.mean(scores):.2f}")
    random = [best(RandomSearch(space, space.evaluate, seed=s)) for s in range(args.seeds)]
    print(f"{'RandomSearch':32s} {'':12s} {np.mean(random):.2f}")


if __name__ == "__main__":
    main()
