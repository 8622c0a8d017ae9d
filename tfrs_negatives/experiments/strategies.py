"""Named negative-sampling strategies, and custom mixes of sources, as retrieval tasks.

Strategies (all but `inbatch` use `CorrectedRetrieval` with a streaming frequency
estimator and accidental-hit removal):

* `inbatch`: `tfrs.tasks.Retrieval()`, the TFRS tutorial's uncorrected in-batch softmax;
* `logq`: in-batch negatives, log-Q corrected;
* `mixed`: in-batch plus `num_negatives` uniform draws from the catalogue per step,
  corrected with the mixture's probability (Mixed Negative Sampling);
* `popularity`: in-batch plus `num_negatives` draws with probability ∝ count^0.75;
* `cross_batch`: in-batch plus a memory of the last `num_negatives` positives of
  training steps with their (stale) embeddings (`negatives.CrossBatch`);
* `cache`: in-batch plus `hard_count` negatives per example sampled from the
  softmax of its scores against a cache of the whole catalogue's embeddings,
  re-embedded and corrected per row (`negatives.Cache`; `num_negatives` rows of
  the cache refreshed per step, besides the drawn ones and the positives);
* `dynamic`: in-batch plus, per example, the `hard_count` highest-scoring of
  `max(num_negatives, hard_count)` uniform candidates drawn per step and scored by
  the current towers (`negatives.Dynamic`, DNS; known positives excluded);
* `dynamic_softmax`: the same candidates, `hard_count` per example sampled by the
  softmax of their scores and corrected by its estimated probability;
* `hard`: `mixed` plus `hard_count` mined negatives per example from ranks
  `hard_window` of the positive's neighbours in the item tower (re-mined every
  epoch; none during a warm-up epoch, then ramped up over one epoch);
* `hardest`: the same from the top ranks (`hardest_window`): expected to hurt
  through false negatives;
* `full_softmax`: every catalogue item every step, the exact softmax (the reference);
* `mix`: the sources of `--mix`, e.g. `inbatch=1,uniform=0.9,hard=0.1`.

A mix lists sources with non-negative shares. `inbatch` takes the batch's other
positives (their number is the batch size minus one, so its value only switches it
on or off); the other sources divide the per-example budget `num_negatives` in
proportion to their values: `uniform` and `popularity` draw that many candidates
per step (shared by the batch), `cross_batch` keeps that many past positives,
`hard` mines that many per example, `cache` samples that many per example,
`dynamic` keeps that many per example (the hardest of `num_negatives` candidates).
"""

import dataclasses
from typing import Dict, List, Optional, Tuple

from tfrs_negatives import negatives
from tfrs_negatives.estimators import StreamingFrequencyEstimator
from tfrs_negatives.experiments.splits import Split
from tfrs_negatives.mining import BruteForceMiner, HardNegativeTable, KnownPositives, ScaNNMiner
from tfrs_negatives.tasks import CorrectedRetrieval

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

STRATEGIES = (
    "inbatch",
    "logq",
    "mixed",
    "popularity",
    "cross_batch",
    "cache",
    "dynamic",
    "dynamic_softmax",
    "hard",
    "hardest",
    "full_softmax",
    "mix",
)
DEFAULT_STRATEGIES = ("inbatch", "logq", "mixed", "hard", "full_softmax")
MIX_SOURCES = ("inbatch", "uniform", "popularity", "cross_batch", "cache", "dynamic", "hard")
MINERS = ("brute", "scann")


@dataclasses.dataclass
class StrategyOptions:
    """The knobs shared by every strategy.

    Attributes:
      num_negatives: Sampled negatives per step (uniform/popularity), or the
        per-example budget a `mix` divides.
      hard_count: Mined negatives per example of `hard`/`hardest`.
      hard_window: Ranks `[lo, hi)` mined by `hard` and by a mix's `hard`.
      hardest_window: Ranks mined by `hardest`.
      popularity_power: Exponent b of the popularity^b source.
      miner: "brute" (exact) or "scann".
      mix: Source shares of the `mix` strategy.
      seed: Seed of the samplers.
      progress: Progress bars while the miners index and mine.
      cross_replica_negatives: `CorrectedRetrieval`'s argument of that name (None:
        global in-batch negatives under a strategy; False: each replica's slice).
    """

    num_negatives: int = 1024
    hard_count: int = 8
    hard_window: Tuple[int, int] = (10, 100)
    hardest_window: Tuple[int, int] = (0, 10)
    popularity_power: float = 0.75
    miner: str = "brute"
    mix: Optional[Dict[str, float]] = None
    seed: int = 0
    progress: bool = False
    cross_replica_negatives: Optional[bool] = None


@dataclasses.dataclass
class Mining:
    """The mined source of a run and what refreshes it.

    Attributes:
      source: The `Mined` source in the task.
      table: The table it draws from.
      miner: What refreshes the table.
      excluded: Query-side tables: per anchor (user), the catalogue rows dropped from
        its ranking (its training positives); None for item-side tables.
    """

    source: negatives.Mined
    table: HardNegativeTable
    miner: object
    excluded: Optional[List[np.ndarray]] = None


@dataclasses.dataclass
class Strategy:
    """A run's task, its mined source (or None) and how many negatives each source gives."""

    name: str
    task: tf.keras.layers.Layer
    mining: Optional[Mining]
    counts: Dict[str, int]


def parse_window(text: str, flag: str) -> Tuple[int, int]:
    """Parses a rank window `"lo,hi"` given as `flag` into `(lo, hi)`.

    Raises:
      ValueError: Not two integers, or not `0 <= lo < hi` (the message names `flag`).
    """
    try:
        lo, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{flag} must be 'lo,hi' (two integers), got {text!r}") from None
    if not 0 <= lo < hi:
        raise ValueError(f"{flag} needs 0 <= lo < hi, got [{lo}, {hi})")
    return lo, hi


def parse_mix(text: str) -> Dict[str, float]:
    """Parses `"inbatch=1,uniform=0.9,hard=0.1"` into `{source: share}`.

    Raises:
      ValueError: An unknown source, a repeated one, a value that is not a
        non-negative number, or a total that is not positive.
    """
    shares: Dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"--mix: expected source=share, got {part!r}")
        if name not in MIX_SOURCES:
            raise ValueError(f"--mix: unknown source {name!r}; choose from {list(MIX_SOURCES)}")
        if name in shares:
            raise ValueError(f"--mix: source {name!r} is given twice")
        try:
            share = float(value)
        except ValueError:
            raise ValueError(
                f"--mix: the share of {name!r} must be a number, got {value!r}"
            ) from None
        if not np.isfinite(share) or share < 0:
            raise ValueError(f"--mix: the share of {name!r} must be >= 0, got {value!r}")
        shares[name] = share
    if not shares or sum(shares.values()) <= 0:
        raise ValueError(f"--mix: the shares must sum to a positive total, got {text!r}")
    return shares


def mix_counts(shares: Dict[str, float], budget: int) -> Dict[str, int]:
    """Negatives per source of a mix: the sampled sources divide `budget` by share.

    In-batch is reported as -1 (the batch's other positives) when its share is > 0.
    A sampled source with a positive share gets at least one negative.
    """
    sampled = {k: v for k, v in shares.items() if k != "inbatch" and v > 0}
    total = sum(sampled.values())
    counts = {k: max(1, int(round(budget * v / total))) for k, v in sampled.items()}
    if shares.get("inbatch", 0) > 0:
        counts = {"inbatch": -1, **counts}
    return counts


def warmup_schedule(
    count: int, steps_per_epoch: int, warmup_epochs: float = 1.0, ramp_epochs: float = 1.0
) -> List[Tuple[float, float]]:
    """`(step, count)` points for `NegativeCurriculum`: 0 during a warm-up, then a linear ramp.

    Without a ramp the count jumps to `count` at the first step after the warm-up.
    """
    warmup = int(round(warmup_epochs * steps_per_epoch))
    ramp = int(round(ramp_epochs * steps_per_epoch))
    if warmup == 0 and ramp == 0:
        return [(0.0, float(count))]
    points = [(0.0, 0.0)]
    if ramp > 0:
        if warmup > 0:
            points.append((float(warmup), 0.0))
        points.append((float(warmup + ramp), float(count)))
    else:
        if warmup > 1:
            points.append((float(warmup - 1), 0.0))
        points.append((float(warmup), float(count)))
    return points


def make_miner(kind: str, items: np.ndarray, window: Tuple[int, int], progress: bool = False):
    """An exact (`"brute"`) or ScaNN (`"scann"`) miner over `items`, keeping ranks `window`."""
    if kind == "brute":
        return BruteForceMiner(items, min_rank=window[0], max_rank=window[1], progress=progress)
    if kind == "scann":
        return ScaNNMiner(items, min_rank=window[0], max_rank=window[1], progress=progress)
    raise ValueError(f"--miner: unknown {kind!r}; choose from {list(MINERS)}")


def _mined(split: Split, count: int, window: Tuple[int, int], options: StrategyOptions) -> Mining:
    lo, hi = window
    if hi > len(split.items):
        raise ValueError(
            f"--hard_window: rank {hi} is beyond the catalogue of {len(split.items)} items"
        )
    if count > hi - lo:
        raise ValueError(
            f"{count} mined negatives per example do not fit the window [{lo}, {hi}) of "
            f"{hi - lo} ranks: lower the count (or the mix's hard share) or widen --hard_window"
        )
    miner = make_miner(options.miner, split.items, window, options.progress)
    table = HardNegativeTable(split.items, miner.window)
    known = KnownPositives(split.train_users, split.train_items)
    source = negatives.Mined(
        table,
        split.items,
        count=count,
        side="item",
        known_positives=known,
        seed=options.seed + 1,
        name="mined",
    )
    return Mining(source, table, miner)


def make_strategy(name: str, split: Split, options: StrategyOptions) -> Strategy:
    """The task (and mined source) of strategy `name` over `split`'s catalogue.

    Raises:
      ValueError: Unknown name, a window beyond the catalogue, a count larger than
        its window or the catalogue, a `mix` without `options.mix`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategies: unknown {name!r}; choose from {list(STRATEGIES)}")
    items = split.items
    if name == "inbatch":
        return Strategy(name, tfrs.tasks.Retrieval(), None, {"inbatch": -1})
    if name == "full_softmax":
        task = CorrectedRetrieval(
            negatives=[negatives.FullCatalogue(items, name="full_catalogue")],
            cross_replica_negatives=options.cross_replica_negatives,
        )
        return Strategy(name, task, None, {"full_catalogue": len(items)})
    counts, window = _source_counts(name, options)
    _check_sampled_counts(counts, len(items))
    sources = _sampled_sources(counts, split, options)
    mining = None
    if "hard" in counts:
        mining = _mined(split, counts["hard"], window, options)
        sources.append(mining.source)
    task = CorrectedRetrieval(
        # CrossBatch's slots are draws from the stream: its q is the estimator's too.
        frequency=(
            StreamingFrequencyEstimator()
            if "inbatch" in counts or "cross_batch" in counts
            else None
        ),
        negatives=sources,
        remove_accidental_hits=True,
        # Mined runs count each distinct candidate once, corrected by its inclusion
        # probability (the default with sampled sources; also without them).
        duplicates="mask" if mining is not None else None,
        cross_replica_negatives=options.cross_replica_negatives,
    )
    return Strategy(name, task, mining, counts)


def _source_counts(name: str, options: StrategyOptions) -> Tuple[Dict[str, int], Tuple[int, int]]:
    """`({source: count}, mined window)` of a named strategy other than `inbatch` and
    `full_softmax` (`inbatch`'s count is -1: the batch's other positives)."""
    k = options.num_negatives
    if name == "mix":
        if options.mix is None:
            raise ValueError("the `mix` strategy needs --mix, e.g. inbatch=1,uniform=0.9,hard=0.1")
        return mix_counts(options.mix, k), options.hard_window
    counts = {"inbatch": -1}
    if name in ("mixed", "hard", "hardest"):
        counts["uniform"] = k
    if name == "popularity":
        counts["popularity"] = k
    if name == "cross_batch":
        counts["cross_batch"] = k
    if name == "cache":
        counts["cache"] = options.hard_count
    if name in ("dynamic", "dynamic_softmax"):
        counts[name] = options.hard_count
    if name in ("hard", "hardest"):
        counts["hard"] = options.hard_count
    window = options.hardest_window if name == "hardest" else options.hard_window
    return counts, window


def _check_sampled_counts(counts: Dict[str, int], num_items: int) -> None:
    """A sampled source may not draw more candidates per step than the catalogue holds."""
    for source in ("uniform", "popularity"):
        if source in counts and counts[source] > num_items:
            raise ValueError(
                f"{counts[source]} {source} negatives per step exceed the catalogue of "
                f"{num_items} items: lower --num_negatives"
            )


def _sampled_sources(counts: Dict[str, int], split: Split, options: StrategyOptions) -> list:
    """The in-batch, uniform, popularity and cross-batch sources named in `counts`, in order."""
    items = split.items
    sources: list = []
    if "inbatch" in counts:
        sources.append(negatives.InBatch(name="in_batch"))
    if "uniform" in counts:
        sources.append(
            negatives.Uniform(items, count=counts["uniform"], seed=options.seed, name="uniform")
        )
    if "popularity" in counts:
        sources.append(
            negatives.Popularity(
                items,
                count=counts["popularity"],
                power=options.popularity_power,
                # + 1: items seen only in the test split must stay drawable.
                counts=split.train_counts.astype(np.float64) + 1.0,
                seed=options.seed,
                name="popularity",
            )
        )
    if "cross_batch" in counts:
        sources.append(negatives.CrossBatch(memory=counts["cross_batch"], name="cross_batch"))
    if "cache" in counts:
        sources.append(
            negatives.Cache(
                items,
                count=counts["cache"],
                refresh=min(options.num_negatives, len(items)),
                known_positives=KnownPositives(split.train_users, split.train_items),
                seed=options.seed + 2,
                name="cache",
            )
        )
    for select, key in (("top", "dynamic"), ("softmax", "dynamic_softmax")):
        if key in counts:
            sources.append(_dynamic_source(counts[key], select, split, options))
    return sources


def _dynamic_source(
    keep: int, select: str, split: Split, options: StrategyOptions
) -> negatives.Dynamic:
    """`keep` per example among `max(num_negatives, keep)` uniform candidates per step."""
    candidates = max(min(options.num_negatives, len(split.items)), keep)
    return negatives.Dynamic(
        split.items,
        candidates=candidates,
        keep=keep,
        select=select,
        known_positives=KnownPositives(split.train_users, split.train_items),
        seed=options.seed + 3,
        name="dynamic",
    )


def chosen(text: str, mix: Optional[str]) -> List[str]:
    """The strategy list of `--strategies` (plus `mix` when `--mix` is given)."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"--strategies: unknown {unknown}; choose from {list(STRATEGIES)}")
    if mix and "mix" not in names:
        names.append("mix")
    if "mix" in names and not mix:
        raise ValueError("--strategies: `mix` needs --mix, e.g. inbatch=1,uniform=0.9,hard=0.1")
    if not names:
        raise ValueError("--strategies: no strategy given")
    return list(dict.fromkeys(names))
