"""`tfrs-negatives embed`, `count` and `mine`: the Beam steps from the command line.

Flags the command does not know are Beam pipeline options (`--runner`,
`--direct_num_workers`, `--direct_running_mode`, `--project`, `--region`,
`--temp_location`, ...), so the same command runs on the DirectRunner or a cluster.
"""

import argparse
from typing import Callable, Dict, List, Sequence


def _window(text: str):
    try:
        low, high = (int(part) for part in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX (e.g. 100,500), got {text!r}") from err
    return low, high


def _count_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfrs-negatives count",
        description="Exact item counts over TFRecord interactions (Apache Beam); other flags "
        "are Beam pipeline options.",
    )
    parser.add_argument("--interactions", required=True, help="glob of TFRecord interactions")
    parser.add_argument("--output", required=True, help="output prefix of the counts file")
    parser.add_argument("--key", default="item_id", help="the counted id feature")
    parser.add_argument("--weight_key", default=None, help="optional float weight feature")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return parser


def _mine_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfrs-negatives mine",
        description="Hard-negative rank windows of every anchor over a sharded catalogue "
        "(Apache Beam); other flags are Beam pipeline options.",
    )
    parser.add_argument("--catalogue", required=True, help="glob of catalogue TFRecords")
    parser.add_argument("--anchors", required=True, help="glob of anchor TFRecords")
    parser.add_argument("--output", required=True, help="output prefix of the mined windows")
    parser.add_argument("--window", type=_window, default=(100, 500), help="MIN,MAX ranks")
    parser.add_argument("--num_shards", type=int, default=8, help="catalogue shards")
    parser.add_argument(
        "--index", default="exact", choices=["exact", "scann"], help="per-shard index"
    )
    parser.add_argument("--anchor_batch", type=int, default=512, help="anchors per search")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output")
    return parser


def _embed_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfrs-negatives embed",
        description="Embeddings of TFRecord records by a tower's SavedModel (Apache Beam): "
        "the item tower's make a `mine --catalogue`, the query tower's `--anchors`; other "
        "flags are Beam pipeline options.",
    )
    parser.add_argument("--model", required=True, help="SavedModel directory (save_tower)")
    parser.add_argument("--records", required=True, help="glob of TFRecord feature records")
    parser.add_argument("--output", required=True, help="output prefix of id/embedding records")
    parser.add_argument("--id_key", default="id", help="the records' id feature (int64/bytes)")
    parser.add_argument("--batch_size", type=int, default=256, help="records per model call")
    parser.add_argument("--signature", default="serving_default", help="the signature run")
    parser.add_argument(
        "--keep", default="", help="comma-separated features copied as-is (e.g. exclude)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output")
    return parser


def _embed(argv: Sequence[str]) -> str:
    args, pipeline_args = _embed_parser().parse_known_args(argv)
    from tfrs_negatives.beam.embed import embed_records

    return embed_records(
        args.model,
        args.records,
        args.output,
        args.id_key,
        args.batch_size,
        args.signature,
        pipeline_args,
        args.overwrite,
        [k for k in args.keep.split(",") if k],
    )


def _count(argv: Sequence[str]) -> str:
    args, pipeline_args = _count_parser().parse_known_args(argv)
    from tfrs_negatives.beam.count import count_items

    return count_items(
        args.interactions, args.output, args.key, args.weight_key, pipeline_args, args.overwrite
    )


def _mine(argv: Sequence[str]) -> str:
    args, pipeline_args = _mine_parser().parse_known_args(argv)
    from tfrs_negatives.beam.mine import mine_windows

    return mine_windows(
        args.catalogue,
        args.anchors,
        args.output,
        args.window,
        args.num_shards,
        args.index,
        args.anchor_batch,
        pipeline_args,
        args.overwrite,
    )


COMMANDS: Dict[str, Callable[[Sequence[str]], str]] = {
    "embed": _embed,
    "count": _count,
    "mine": _mine,
}


def run(command: str, argv: List[str]) -> str:
    """Runs `command` (`embed`, `count` or `mine`) with its flags; returns what it wrote."""
    try:
        import apache_beam  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"`tfrs-negatives {command}` needs Apache Beam: pip install 'tfrs_negatives[beam]'"
        ) from err
    return COMMANDS[command](argv)
