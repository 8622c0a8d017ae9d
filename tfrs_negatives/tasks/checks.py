"""Input checks of the retrieval task: errors that name the argument, expected and received."""

import tensorflow as tf


def check_embeddings(query_embeddings: tf.Tensor, candidate_embeddings: tf.Tensor):
    """Checks ranks and dims; returns `(num_queries, num_candidates)` as scalar tensors."""
    if query_embeddings.shape.rank not in (None, 2, 3):
        raise ValueError(
            "`query_embeddings` must have shape [B, D] or [B, heads, D], got shape "
            f"{query_embeddings.shape}."
        )
    if candidate_embeddings.shape.rank not in (None, 2):
        raise ValueError(
            "`candidate_embeddings` must have shape [N, D], got shape "
            f"{candidate_embeddings.shape}."
        )
    check_dimension(query_embeddings, candidate_embeddings, "candidate_embeddings")
    b, n = query_embeddings.shape[0], candidate_embeddings.shape[0]
    if b is not None and n is not None and n < b:
        raise ValueError(
            f"`candidate_embeddings` must have at least as many rows as `query_embeddings` "
            f"({b}: one positive per query), got {n}."
        )
    return tf.shape(query_embeddings)[0], tf.shape(candidate_embeddings)[0]


def check_dimension(query_embeddings: tf.Tensor, embeddings: tf.Tensor, name: str) -> None:
    """Raises unless `embeddings` has the queries' embedding dimension."""
    q_dim, c_dim = query_embeddings.shape[-1], embeddings.shape[-1]
    if q_dim is not None and c_dim is not None and q_dim != c_dim:
        raise ValueError(
            f"`{name}` must have the embedding dimension of `query_embeddings` ({q_dim}), "
            f"got {c_dim} (shapes {query_embeddings.shape} and {embeddings.shape})."
        )


def check_length(values: tf.Tensor, expected: tf.Tensor, name: str) -> None:
    """Raises (statically when shapes are known) unless `values` has `expected` rows."""
    static_expected = tf.get_static_value(expected)
    if values.shape.rank == 1 and values.shape[0] is not None and static_expected is not None:
        if values.shape[0] != static_expected:
            raise ValueError(
                f"`{name}` must have {static_expected} entries (one per row), "
                f"got {values.shape[0]}."
            )
        return
    tf.debugging.assert_equal(
        tf.size(values), expected, message=f"`{name}` must have one entry per row"
    )


def checked_probabilities(given: tf.Tensor, num_candidates: tf.Tensor) -> tf.Tensor:
    """`candidate_sampling_probability` as float32, checked to be `[N]` in `(0, 1]`."""
    given = tf.cast(given, tf.float32)
    if given.shape.rank is not None and given.shape.rank != 1:
        raise ValueError(
            "`candidate_sampling_probability` must have shape [num_candidates], "
            f"got shape {given.shape}."
        )
    check_length(given, num_candidates, "candidate_sampling_probability")
    check = tf.debugging.assert_equal(
        tf.reduce_all((given > 0.0) & (given <= 1.0)),
        True,
        message="`candidate_sampling_probability` must lie in (0, 1] with no NaN",
    )
    with tf.control_dependencies([check]):
        return tf.identity(given)


def scores(query_embeddings: tf.Tensor, candidate_embeddings: tf.Tensor) -> tf.Tensor:
    """`[B, N]` float32 dot-product logits (max over heads for `[B, H, D]` queries)."""
    queries = tf.cast(query_embeddings, tf.float32)
    candidates = tf.cast(candidate_embeddings, tf.float32)
    if queries.shape.rank == 3:
        return tf.reduce_max(tf.einsum("qhd,cd->qhc", queries, candidates), axis=1)
    return tf.linalg.matmul(queries, candidates, transpose_b=True)
