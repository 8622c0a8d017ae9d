"""Hard-negative mining: exact and ScaNN miners, the in-graph table, known positives."""

from tfrs_negatives.mining.miner import BruteForceMiner, Miner, ScaNNMiner
from tfrs_negatives.mining.search import ExactSearch, ScaNNSearch, import_scann
from tfrs_negatives.mining.table import HardNegativeTable, KnownPositives, pair_keys

__all__ = [
    "BruteForceMiner",
    "ExactSearch",
    "HardNegativeTable",
    "KnownPositives",
    "Miner",
    "ScaNNMiner",
    "ScaNNSearch",
    "import_scann",
    "pair_keys",
]
