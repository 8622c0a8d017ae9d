"""Pure tensor functions (no Keras state), each tested against NumPy."""

from tfrs_negatives.ops.ids import fingerprint64, to_int64_ids
from tfrs_negatives.ops.logits import (
    corrected_logits,
    corrected_softmax_loss,
    fused_corrected_softmax_loss,
)
from tfrs_negatives.ops.logq import (
    CORRECTIONS,
    clipped_log_probability,
    logq_correction,
    logq_correction_positive_uncorrected,
)
from tfrs_negatives.ops.losses import softmax_cross_entropy
from tfrs_negatives.ops.masking import accidental_hit_mask, apply_mask, mask_value

__all__ = [
    "CORRECTIONS",
    "accidental_hit_mask",
    "apply_mask",
    "clipped_log_probability",
    "corrected_logits",
    "corrected_softmax_loss",
    "fused_corrected_softmax_loss",
    "fingerprint64",
    "logq_correction",
    "logq_correction_positive_uncorrected",
    "mask_value",
    "softmax_cross_entropy",
    "to_int64_ids",
]
