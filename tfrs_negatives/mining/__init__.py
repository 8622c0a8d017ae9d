"""Hard-negative mining: exact and ScaNN miners, the in-graph table, known positives."""

from tfrs_negatives.mining.diagnostics import false_negative_rate_by_rank
from tfrs_negatives.mining.impressions import impression_table
from tfrs_negatives.mining.mined_files import load_mined_table, read_mined_windows
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
    "false_negative_rate_by_rank",
    "impression_table",
    "load_mined_table",
    "import_scann",
    "pair_keys",
    "read_mined_windows",
]
