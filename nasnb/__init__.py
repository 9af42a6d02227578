"""nasnb: Neural Architecture Search you can read, run and watch.

    import nasnb
    from nasnb.spaces import NB201Space
    space = NB201Space()
    arch = space.sample(0)
    data = nasnb.data.load("digits")                      # bundled with scikit-learn, no download
    metrics = nasnb.evaluators.TrainEvaluator(data, epochs=3)(arch)

Importing nasnb loads torch but no Jupyter code, matplotlib or torchvision: those load when a
function needs them.
"""
from nasnb import bench, constraints, data, errors, evaluators, objectives, proxies, registry, spaces, train, viz
from nasnb.evaluators import TrainEvaluator
from nasnb.spaces import GENOTYPES, Choice, DartsSpace, Genotype, NB201Space

__version__ = "0.1.0"

__all__ = [
    "bench", "constraints", "data", "errors", "evaluators", "objectives", "proxies", "registry", "spaces", "train",
    "viz",
    "TrainEvaluator", "NB201Space", "DartsSpace", "Genotype", "GENOTYPES", "Choice",
]
