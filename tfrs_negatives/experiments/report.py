"""The outputs of a comparison: console table, JSON, CSV, picture and a measured diagnosis."""

import csv
import json
import math
from typing import Dict, List, Optional, Sequence

from tfrs_negatives.experiments.training import RunResult

import numpy as np

TABLE_COLUMNS = (  # (metric key, header, format)
    ("recall@{k}", "R@{k}", "{:.3f}"),
    ("head_recall@{top}", "head@{top}", "{:.3f}"),
    ("tail_recall@{top}", "tail@{top}", "{:.3f}"),
    ("step_ms", "ms/step", "{:.0f}"),
    ("final_loss", "loss", "{:.3g}"),
    ("false_negative_rate", "FN rate", "{:.1%}"),
)


def _clean(value):
    """NaN and infinities as None (JSON has no NaN); NumPy numbers as Python ones."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def table_rows(results: Dict[str, RunResult], ks: Sequence[int]) -> List[List[str]]:
    """The console table as rows of strings, header first."""
    top = max(ks)
    columns = []
    for key, header, spec in TABLE_COLUMNS:
        if "{k}" in key:
            columns += [(key.format(k=k), header.format(k=k), spec) for k in ks]
        else:
            columns.append((key.format(top=top), header.format(top=top), spec))
    columns = [c for c in columns if any(c[0] in r.metrics for r in results.values())]
    rows = [["strategy"] + [header for _, header, _ in columns]]
    for name, result in results.items():
        cells = [name]
        for key, _, spec in columns:
            value = result.metrics.get(key, float("nan"))
            cells.append("-" if value is None or not math.isfinite(value) else spec.format(value))
        rows.append(cells)
    return rows


def format_table(rows: List[List[str]]) -> str:
    """Left-aligned first column, right-aligned numbers."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def diagnostics_rows(results: Dict[str, RunResult]) -> List[List[str]]:
    """The negative-diagnostics table (last epoch means), header first; [] without any.

    Columns: strategy, source, share of the negatives' softmax mass (the source's
    mass over all negatives' mass), mean score gap positive - negative, share of
    the source's entries masked, distinct candidates per step.
    """
    rows = [["strategy", "source", "mass share", "score gap", "masked", "distinct/step"]]
    for name, result in results.items():
        sources = {k: v for k, v in result.diagnostics.items() if k != "positive"}
        total = sum(v.get("mass", 0.0) for v in sources.values()) or float("nan")
        for source, stats in sources.items():
            rows.append(
                [
                    name,
                    source,
                    f"{stats.get('mass', float('nan')) / total:.1%}",
                    f"{stats.get('gap', float('nan')):.2f}",
                    f"{stats.get('masked', float('nan')):.1%}",
                    f"{stats.get('distinct', float('nan')):.0f}",
                ]
            )
    return rows if len(rows) > 1 else []


def write_json(path: str, header: dict, results: Dict[str, RunResult], diagnosis: List[str]):
    """Writes the header, every strategy's metrics, groups, logs and counts, and the diagnosis."""
    body = {
        **header,
        "results": {
            name: {
                **r.metrics,
                "recall_by_popularity_group": r.recall_by_group,
                "negatives_per_source": r.counts,
                "last_epoch_logs": r.logs,
                "negative_diagnostics": r.diagnostics,
            }
            for name, r in results.items()
        },
        "diagnosis": diagnosis,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_clean(body), f, indent=2, allow_nan=False)


def write_csv(path: str, results: Dict[str, RunResult]) -> None:
    """One row per strategy, one column per metric (empty where NaN or missing)."""
    keys: List[str] = []
    for r in results.values():
        keys += [k for k in r.metrics if k not in keys]
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["strategy"] + keys)
        for name, r in results.items():
            cells = [_clean(r.metrics.get(k)) for k in keys]
            writer.writerow([name] + ["" if c is None else c for c in cells])


def draw(path: str, results: Dict[str, RunResult], k: int, title: str) -> None:
    """Two panels: recall@k by popularity group per strategy, and head vs tail recall@k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    markers = "osD^v<>px*"
    for i, (name, r) in enumerate(results.items()):
        color = f"C{i % 10}"
        groups = np.arange(1, len(r.recall_by_group) + 1)
        left.plot(groups, r.recall_by_group, marker="o", color=color, label=name)
        head, tail = r.metrics.get(f"head_recall@{k}"), r.metrics.get(f"tail_recall@{k}")
        right.scatter([head], [tail], s=60, color=color, marker=markers[i % 10], label=name)
    left.set_xlabel("item popularity group (1 = most popular tenth of items)")
    left.set_ylabel(f"recall@{k}")
    left.set_title(f"recall@{k} by item popularity")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.legend(fontsize=8)
    right.set_xlabel(f"head recall@{k} (items holding half the training interactions)")
    right.set_ylabel(f"tail recall@{k}")
    right.set_title("head vs tail")
    right.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _metric(results: Dict[str, RunResult], name: str, key: str) -> Optional[float]:
    value = results[name].metrics.get(key) if name in results else None
    return None if value is None or not math.isfinite(value) else float(value)


def diagnose(results: Dict[str, RunResult], k: int) -> List[str]:
    """Short findings computed from the measured figures (not canned text).

    Covers: the best strategy overall, on the head and on the tail; what the log-Q
    correction did to head items; each strategy's distance to the full softmax;
    mined negatives' false-negative rate and their effect against the same mix
    without them; step-time cost.
    """
    overall = f"recall@{k}"
    ranked = sorted(
        (n for n in results if _metric(results, n, overall) is not None),
        key=lambda n: -_metric(results, n, overall),
    )
    if not ranked:
        return ["No strategy produced a finite recall."]
    lines = [_best_finding(results, ranked, overall)]
    lines += _head_tail_findings(results, k)
    lines += _logq_finding(results, k)
    lines += _full_softmax_finding(results, ranked, overall)
    lines += _false_negative_findings(results, k)
    lines += _diagnostics_findings(results)
    lines += _step_time_finding(results)
    return lines


def _best_finding(results: Dict[str, RunResult], ranked: List[str], overall: str) -> str:
    """The best run on `overall` (`ranked` best first) and its lead over the second."""
    best = ranked[0]
    top = _metric(results, best, overall)
    line = f"Best {overall}: {best} ({top:.3f})"
    if len(ranked) > 1:
        second = ranked[1]
        runner_up = _metric(results, second, overall)
        if top - runner_up < 0.0005:
            line += f", level with {second} ({top:.4f} vs {runner_up:.4f})"
        else:
            line += f", {top - runner_up:.3f} ahead of {second}"
    return line + "."


def _head_tail_findings(results: Dict[str, RunResult], k: int) -> List[str]:
    """The best and the worst run on the tail, then on the head."""
    lines = []
    for label in ("tail", "head"):
        key = f"{label}_recall@{k}"
        scored = [n for n in results if _metric(results, n, key) is not None]
        if scored:
            top = max(scored, key=lambda n: _metric(results, n, key))
            low = min(scored, key=lambda n: _metric(results, n, key))
            lines.append(
                f"Best on the {label}: {top} ({label} recall@{k} "
                f"{_metric(results, top, key):.3f}); "
                f"worst: {low} ({_metric(results, low, key):.3f})."
            )
    return lines


def _logq_finding(results: Dict[str, RunResult], k: int) -> List[str]:
    """What the log-Q correction did to head recall (`inbatch` against `logq`)."""
    head = f"head_recall@{k}"
    plain, logq = _metric(results, "inbatch", head), _metric(results, "logq", head)
    if plain is None or logq is None:
        return []
    verdict = (
        "uncorrected in-batch softmax under-scores popular items and the correction restores them"
        if logq > plain + 0.01
        else "the correction did not raise head recall here"
    )
    return [
        f"log-Q correction moved head recall@{k} from {plain:.3f} (inbatch) to "
        f"{logq:.3f} (logq): {verdict}."
    ]


def _full_softmax_finding(
    results: Dict[str, RunResult], ranked: List[str], overall: str
) -> List[str]:
    """The runs within 0.005 of the full softmax (or above) and the furthest below it."""
    reference = _metric(results, "full_softmax", overall)
    if reference is None:
        return []
    gaps = {n: _metric(results, n, overall) - reference for n in ranked if n != "full_softmax"}
    close = [n for n, g in gaps.items() if g >= -0.005]
    far = min(gaps, key=gaps.get) if gaps else None
    text = f"Full softmax reaches {reference:.3f}; within 0.005 of it or above: "
    text += ", ".join(close) if close else "none"
    if far is not None:
        text += f"; furthest below: {far} ({gaps[far]:+.3f})"
    return [text + "."]


def _false_negative_findings(results: Dict[str, RunResult], k: int) -> List[str]:
    """Per mined run: its false-negative rate and its effect against `mixed`."""
    overall, tail = f"recall@{k}", f"tail_recall@{k}"
    lines = []
    for name in results:
        rate = _metric(results, name, "false_negative_rate")
        if rate is None:
            continue
        text = (
            f"{name}: {rate:.1%} of its mined negatives are held-out positives of the "
            "user (false negatives)"
        )
        base = "mixed" if "mixed" in results and name != "mixed" else None
        if base is not None:
            d_all = _metric(results, name, overall) - _metric(results, base, overall)
            d_tail = (_metric(results, name, tail) or 0.0) - (_metric(results, base, tail) or 0.0)
            text += f"; against {base}: {overall} {d_all:+.3f}, tail {d_tail:+.3f}"
        lines.append(text + ".")
    return lines


def _step_time_finding(results: Dict[str, RunResult]) -> List[str]:
    """The slowest run's step time against the fastest's."""
    steps = {n: _metric(results, n, "step_ms") for n in results}
    steps = {n: v for n, v in steps.items() if v is not None and v > 0}
    if len(steps) < 2:
        return []
    fast = min(steps, key=steps.get)
    slow = max(steps, key=steps.get)
    return [
        f"Step time: {slow} costs {steps[slow] / steps[fast]:.2f}x the step of {fast} "
        f"({steps[slow]:.0f} vs {steps[fast]:.0f} ms)."
    ]


def _diagnostics_findings(results: Dict[str, RunResult]) -> List[str]:
    """Per strategy with several negative sources: who carries the gradient, who is hardest."""
    lines = []
    for name, result in results.items():
        sources = {k: v for k, v in result.diagnostics.items() if k != "positive"}
        masses = {k: v.get("mass", float("nan")) for k, v in sources.items()}
        masses = {k: m for k, m in masses.items() if math.isfinite(m)}
        if len(masses) < 2 or sum(masses.values()) <= 0:
            continue
        total = sum(masses.values())
        order = sorted(masses, key=masses.get, reverse=True)
        shares = ", ".join(f"{k} {masses[k] / total:.1%}" for k in order)
        text = f"{name}: share of the negatives' softmax mass (gradient signal): {shares}"
        gaps = {k: v.get("gap", float("nan")) for k, v in sources.items()}
        gaps = {k: g for k, g in gaps.items() if math.isfinite(g)}
        if len(gaps) > 1:
            hardest = min(gaps, key=gaps.get)
            rest = ", ".join(f"{k} {g:.2f}" for k, g in gaps.items() if k != hardest)
            text += (
                f"; hardest negatives: {hardest} (score gap to the positive "
                f"{gaps[hardest]:.2f}; {rest})"
            )
        lines.append(text + ".")
    return lines
