"""Search spaces: the sets of architectures a search explores."""
from nasnb.spaces.base import BuildableSpace, Choice, EnumerableSpace, SearchSpace, as_rng
from nasnb.spaces.nb201 import NB201Space
from nasnb.spaces.darts import DartsSpace, Genotype, GENOTYPES
from nasnb.spaces.mobilenet import MobileNetSpace
from nasnb.spaces.layers import LayerSpace
from nasnb.spaces.programs import ProgramSpace
from nasnb.spaces.transformer import TransformerSpace

__all__ = ["Choice", "SearchSpace", "BuildableSpace", "EnumerableSpace", "as_rng", "NB201Space", "DartsSpace",
           "Genotype", "GENOTYPES", "MobileNetSpace", "LayerSpace", "ProgramSpace",
           "TransformerSpace"]
