"""Candidate towers for the examples and benchmarks: content towers that share parameters."""

from tfrs_negatives.towers.content import ContentItemTower, multi_hot

__all__ = ["ContentItemTower", "multi_hot"]
