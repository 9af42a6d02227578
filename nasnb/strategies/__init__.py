"""Search strategies: which architecture to try next (Search: any search; Strategy: ask/tell)."""
from nasnb.strategies.base import Proposal, Search, Strategy
from nasnb.strategies.random import RandomSearch
from nasnb.strategies.reinforce import Controller, Reinforce
from nasnb.strategies.evolution import RegularizedEvolution
from nasnb.strategies.nsga2 import NSGA2
from nasnb.strategies.darts import DARTS
from nasnb.strategies.darts_variants import GDASConfig, PDARTSConfig
from nasnb.strategies.enas import ENAS
from nasnb.strategies.optuna_search import OptunaSearch
from nasnb.strategies.qlearning import MetaQNN
from nasnb.strategies.proxyless import ProxylessNAS
from nasnb.strategies.halving import Hyperband, SuccessiveHalving
from nasnb.strategies.automl_zero import AutoMLZero
from nasnb.strategies.predictor import PredictorGuided

__all__ = ["Proposal", "Search", "Strategy", "RandomSearch", "RegularizedEvolution", "Controller", "Reinforce", "DARTS",
           "GDASConfig", "PDARTSConfig", "ENAS", "OptunaSearch",
           "NSGA2", "MetaQNN", "ProxylessNAS", "SuccessiveHalving", "Hyperband", "AutoMLZero",
           "PredictorGuided"]
