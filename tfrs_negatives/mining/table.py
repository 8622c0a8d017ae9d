"""The in-graph state of hard-negative mining, under the name the README gives it.

`HardNegativeTable` and `KnownPositives` live beside the `Mined` source that reads
them (`tfrs_negatives.negatives`), so that `negatives/` never imports `mining/`;
they are re-exported here, where a miner's user looks for them.
"""

from tfrs_negatives.negatives.hard_negative_table import HardNegativeTable
from tfrs_negatives.negatives.known_positives import KnownPositives, pair_keys

__all__ = ["HardNegativeTable", "KnownPositives", "pair_keys"]
