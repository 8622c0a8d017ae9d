"""TFRS task subclasses."""

from tfrs_negatives.tasks.corrected_retrieval import CorrectedRetrieval

__all__ = ["CorrectedRetrieval"]
