"""Ranking-side negatives: subsampling logged impressions, prior correction, calibration."""

from tfrs_negatives.ops.calibration import (
    expected_calibration_error,
    fit_isotonic,
    fit_platt,
    log_loss,
    pool_adjacent_violators,
)
from tfrs_negatives.ranking.calibration import IsotonicCalibration, PlattCalibration
from tfrs_negatives.ranking.prior_correction import PriorCorrection
from tfrs_negatives.ranking.subsampling import subsample_negatives

__all__ = [
    "IsotonicCalibration",
    "PlattCalibration",
    "PriorCorrection",
    "expected_calibration_error",
    "fit_isotonic",
    "fit_platt",
    "log_loss",
    "pool_adjacent_violators",
    "subsample_negatives",
]
