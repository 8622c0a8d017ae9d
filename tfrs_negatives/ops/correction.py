"""`CorrectionInputs`: everything the corrected logits need besides the scores, as one value."""

from typing import NamedTuple, Optional

import tensorflow as tf


class CorrectionInputs(NamedTuple):
    """The inputs of the log-Q correction, the negatives' weights and the masks of a step.

    Two layouts of the `[B, N]` scores are described by `positive_columns`:

    * the TFRS layout (`positive_columns` None): row `i`'s positive is column `i`
      (the batch's candidates first, then extra negatives);
    * any other, e.g. sampled softmax without in-batch negatives, where every row's
      positive is column 0 and columns `1..K` are shared draws
      (`positive_columns = zeros([B])`). Per-column inputs then hold a placeholder
      at the positives' column (it is never corrected as a negative, never masked),
      and `positive_probabilities` gives each row's own positive probability.

    Attributes:
      probabilities: Optional `[N]` sampling probability of each column's candidate;
        None: no correction.
      method: `"logq"` or `"positive_uncorrected"` (`tfrs_negatives.ops.logq`).
      clip_min: Lower clip of probabilities before the log.
      strength: Multiplier `a` of the correction.
      positive_ids: Optional `[B]` int64 ids of the rows' positives; with
        `candidate_ids`, candidates equal to them (accidental hits) are masked.
      candidate_ids: Optional `[N']` int64 ids of the first `N' <= N` columns
        (later per-row columns are masked through `score_mask`).
      column_excluded: Optional `[N]` bool: column `j` is masked for every row but
        the one it is the positive of (duplicates, inactive draws, sources at
        weight 0).
      column_log_weight: Optional `[N]` log-weight added to column `j` as a
        negative (not as a row's positive).
      score_mask: Optional `[B, N]` bool; False entries are masked.
      positive_columns: Optional `[B]` int32 column of each row's positive; None:
        row `i`'s is column `i`.
      positive_probabilities: Optional `[B]` sampling probability of each row's
        positive; None: `probabilities` at the positive's column.
    """

    probabilities: Optional[tf.Tensor] = None
    method: str = "logq"
    clip_min: float = 1e-6
    strength: float = 1.0
    positive_ids: Optional[tf.Tensor] = None
    candidate_ids: Optional[tf.Tensor] = None
    column_excluded: Optional[tf.Tensor] = None
    column_log_weight: Optional[tf.Tensor] = None
    score_mask: Optional[tf.Tensor] = None
    positive_columns: Optional[tf.Tensor] = None
    positive_probabilities: Optional[tf.Tensor] = None

    def positive_column_indices(self, num_rows: tf.Tensor) -> tf.Tensor:
        """`[B]` int32 column of each row's positive (the diagonal when not given)."""
        if self.positive_columns is None:
            return tf.range(num_rows, dtype=tf.int32)
        return tf.cast(self.positive_columns, tf.int32)

    def positive_probability(self, num_rows: tf.Tensor) -> tf.Tensor:
        """`[B]` sampling probability of each row's positive (needs `probabilities`)."""
        if self.positive_probabilities is not None:
            return tf.cast(self.positive_probabilities, tf.float32)
        return tf.gather(self.probabilities, self.positive_column_indices(num_rows))

    def rows(self, rows: tf.Tensor) -> "CorrectionInputs":
        """The inputs of batch rows `rows` (`[R]` int32) only: per-row fields gathered.

        Row `k` of the result is batch row `rows[k]`; its positive keeps its column
        (`rows[k]` in the TFRS layout), so the rows' logits equal those rows of the
        whole batch's.
        """

        def take(values: Optional[tf.Tensor]) -> Optional[tf.Tensor]:
            return None if values is None else tf.gather(values, rows)

        columns = rows if self.positive_columns is None else tf.gather(self.positive_columns, rows)
        return self._replace(
            positive_ids=take(self.positive_ids),
            score_mask=take(self.score_mask),
            positive_columns=tf.cast(columns, tf.int32),
            positive_probabilities=take(self.positive_probabilities),
        )
