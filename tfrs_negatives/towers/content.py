"""`ContentItemTower`: item embeddings sharing parameters across items (id + words + labels)."""

from typing import Any, Dict, Optional, Sequence

import numpy as np
import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="tfrs_negatives")
class ContentItemTower(tf.keras.layers.Layer):
    """Embeds item ids as the sum of an id embedding, a bag of title words and a bag of labels.

    `e(i) = E_id[i] + mean_{w in words(text_i)} E_word[w] + mean_{g in labels_i} E_label[g]`,
    each part `[dim]`. The word and label parts are shared by every item with the same
    word or label (a title's words, a film's genres), so items with similar content
    start, and stay, close: the setting where hard negatives (neighbours of the
    positive) are items an ID tower would never confuse but this one does. Items are
    given by id (what the task's catalogue and the mined tables hold); the tower
    looks their text and labels up in constant tables built from `ids`, `texts` and
    `labels`. An unknown id gets the out-of-vocabulary row (empty text, no label).

    Args:
      ids: `[N]` distinct string item ids (e.g. MovieLens titles).
      texts: `[N]` strings, the text of each item (lower-cased, punctuation
        stripped, split on whitespace); defaults to `ids`.
      labels: Optional `[N, L]` multi-hot 0/1 array of categorical labels (e.g.
        genres); None leaves the label part out.
      embedding_dim: `dim`, the output size.
      use_id: Whether to add the per-item id embedding (False: content only).
      max_tokens: Word vocabulary size (most frequent words; None keeps all).

    Call:
      `[...]` string ids -> `[..., dim]` float32 embeddings.
    """

    def __init__(  # noqa: PLR0913 (a configuration list, as TFRS's Retrieval)
        self,
        ids: Any,
        texts: Optional[Any] = None,
        labels: Optional[Any] = None,
        embedding_dim: int = 32,
        use_id: bool = True,
        max_tokens: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        ids = np.asarray(ids).astype(object)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError(f"`ids` must be a non-empty rank-1 array, got shape {ids.shape}.")
        if len(set(ids.tolist())) != ids.size:
            raise ValueError("`ids` must be distinct.")
        texts = ids if texts is None else np.asarray(texts).astype(object)
        if texts.shape != ids.shape:
            raise ValueError(
                f"`texts` must have shape {ids.shape} (one per id), got {texts.shape}."
            )
        if labels is not None:
            labels = np.asarray(labels, np.float32)
            if labels.ndim != 2 or labels.shape[0] != ids.size:
                raise ValueError(
                    f"`labels` must be [N={ids.size}, L] multi-hot, got shape {labels.shape}."
                )
        if not isinstance(embedding_dim, (int, np.integer)) or embedding_dim < 1:
            raise ValueError(f"`embedding_dim` must be a positive integer, got {embedding_dim!r}.")
        self.ids, self.texts, self.labels = ids, texts, labels
        self.embedding_dim, self.use_id, self.max_tokens = int(embedding_dim), use_id, max_tokens
        n = ids.size
        self.lookup = tf.keras.layers.StringLookup(vocabulary=list(ids), mask_token=None)
        self.vectorize = tf.keras.layers.TextVectorization(max_tokens=max_tokens)
        self.vectorize.adapt(tf.constant(list(texts)))
        # Row 0 of the constant tables is the out-of-vocabulary item (as the lookup's 0).
        self._tokens = tf.constant(self.vectorize(tf.constant([""] + list(texts))))
        self.id_embedding = (
            tf.keras.layers.Embedding(n + 1, self.embedding_dim, name="id") if use_id else None
        )
        self.word_embedding = tf.keras.layers.Embedding(
            self.vectorize.vocabulary_size(), self.embedding_dim, name="word"
        )
        if labels is not None:
            multi_hot = np.concatenate([np.zeros([1, labels.shape[1]], np.float32), labels])
            self._labels = tf.constant(multi_hot)
            self.label_embedding = tf.keras.layers.Dense(
                self.embedding_dim, use_bias=False, name="label"
            )
        else:
            self._labels = self.label_embedding = None

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        index = self.lookup(inputs)
        tokens = tf.gather(self._tokens, index)  # [..., T], 0 = padding
        present = tf.cast(tokens > 0, tf.float32)[..., None]
        words = tf.reduce_sum(self.word_embedding(tokens) * present, -2)
        out = words / tf.maximum(tf.reduce_sum(present, -2), 1.0)
        if self.id_embedding is not None:
            out += self.id_embedding(index)
        if self.label_embedding is not None:
            labels = tf.gather(self._labels, index)
            count = tf.maximum(tf.reduce_sum(labels, -1, keepdims=True), 1.0)
            out += self.label_embedding(labels / count)
        return out

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        config.update(
            ids=[str(i) for i in self.ids],
            texts=[str(t) for t in self.texts],
            labels=None if self.labels is None else self.labels.tolist(),
            embedding_dim=self.embedding_dim,
            use_id=self.use_id,
            max_tokens=self.max_tokens,
        )
        return config


def multi_hot(label_lists: Sequence[Sequence[int]], num_labels: int) -> np.ndarray:
    """`[N, num_labels]` 0/1 rows from lists of label ids in `[0, num_labels)`."""
    out = np.zeros([len(label_lists), num_labels], np.float32)
    for row, given in enumerate(label_lists):
        labels = np.asarray(given, np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= num_labels):
            raise ValueError(
                f"label ids must be in [0, {num_labels}), row {row} has {labels.tolist()}."
            )
        out[row, labels] = 1.0
    return out
