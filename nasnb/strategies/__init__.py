"""Search strategies: which architecture to try next."""
from nasnb.strategies.base import Proposal, Strategy
from nasnb.strategies.random import RandomSearch

__all__ = ["Proposal", "Strategy", "RandomSearch"]
