"""Search strategies: which architecture to try next."""
from nasnb.strategies.base import Proposal, Strategy
from nasnb.strategies.random import RandomSearch
from nasnb.strategies.reinforce import Controller, Reinforce
from nasnb.strategies.evolution import RegularizedEvolution

__all__ = ["Proposal", "Strategy", "RandomSearch", "RegularizedEvolution", "Controller", "Reinforce"]
