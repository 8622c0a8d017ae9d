"""Pure tensor functions (no Keras state), each tested against NumPy."""

from tfrs_negatives.ops.correction import CorrectionInputs
from tfrs_negatives.ops.diagnostics import StatisticsRequest
from tfrs_negatives.ops.fused import fused_loss_and_statistics, fused_retrieval_loss
from tfrs_negatives.ops.hard_weighting import tilted_debiased_softmax
from tfrs_negatives.ops.ids import fingerprint64, to_int64_ids
from tfrs_negatives.ops.logits import (
    LOSSES,
    LossChoice,
    corrected_logits,
    exclusion_mask,
    retrieval_loss,
    valid_negatives,
)
from tfrs_negatives.ops.logq import (
    CORRECTIONS,
    clipped_log_probability,
    logq_correction,
    logq_correction_positive_uncorrected,
)
from tfrs_negatives.ops.losses import bce_loss, bpr_loss, gbce_beta, softmax_cross_entropy
from tfrs_negatives.ops.masking import accidental_hit_mask, apply_mask, mask_value
from tfrs_negatives.ops.mixture import (
    expected_share,
    inclusion_probability,
    log_miss_with_replacement,
)

__all__ = [
    "CORRECTIONS",
    "CorrectionInputs",
    "StatisticsRequest",
    "LOSSES",
    "LossChoice",
    "accidental_hit_mask",
    "apply_mask",
    "bce_loss",
    "bpr_loss",
    "clipped_log_probability",
    "corrected_logits",
    "exclusion_mask",
    "expected_share",
    "fingerprint64",
    "fused_loss_and_statistics",
    "fused_retrieval_loss",
    "gbce_beta",
    "inclusion_probability",
    "log_miss_with_replacement",
    "logq_correction",
    "logq_correction_positive_uncorrected",
    "mask_value",
    "retrieval_loss",
    "softmax_cross_entropy",
    "tilted_debiased_softmax",
    "to_int64_ids",
    "valid_negatives",
]
