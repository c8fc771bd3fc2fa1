"""Summaries of repeated measurements and the comparison table."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from benchmarks.harness import higher_is_better

__all__ = ["Row", "Summary", "format_markdown", "format_table", "format_value", "summarize"]


@dataclass(frozen=True)
class Summary:
    """Median, minimum and maximum of one metric over the rounds.

    Args:
        median: The median.
        low: The minimum.
        high: The maximum.
        count: How many rounds produced a value.
    """

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        """Summarize a non-empty list of values.

        Args:
            values: The values.

        Returns:
            Their summary.
        """
        return cls(statistics.median(values), min(values), max(values), len(values))


@dataclass(frozen=True)
class Row:
    """One line of the table.

    Args:
        workload: The workload name.
        metric: The metric name.
        columns: Per implementation name, the summary (None where it has no values).
    """

    workload: str
    metric: str
    columns: dict[str, Summary | None]

    def ratio(self, baseline: str, other: str) -> float | None:
        """Return ``other`` median over ``baseline`` median, if both exist and are not 0.

        Args:
            baseline: The baseline implementation name.
            other: The compared implementation name.

        Returns:
            The ratio, or None.
        """
        base, then = self.columns.get(baseline), self.columns.get(other)
        if base is None or then is None or base.median == 0:
            return None
        return then.median / base.median


def summarize(
    samples: dict[str, dict[str, list[dict[str, float]]]], names: list[str]
) -> list[Row]:
    """Collect per-round metrics into rows.

    Args:
        samples: Workload name, then implementation name, to one metrics mapping per
            successful round.
        names: Implementation names in column order.

    Returns:
        One row per workload and metric, in first-seen order.
    """
    rows: list[Row] = []
    for workload, per_impl in samples.items():
        metrics: list[str] = []
        for rounds in per_impl.values():
            for metric_map in rounds:
                metrics.extend(m for m in metric_map if m not in metrics)
        for metric in metrics:
            columns: dict[str, Summary | None] = {}
            for name in names:
                values = [r[metric] for r in per_impl.get(name, []) if metric in r]
                columns[name] = Summary.of(values) if values else None
            rows.append(Row(workload, metric, columns))
    return rows


def format_value(value: float) -> str:
    """Format a number with about three significant digits.

    Args:
        value: The number.

    Returns:
        Its text.
    """
    size = abs(value)
    if size >= 100 or value == 0:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _cell(summary: Summary | None) -> str:
    if summary is None:
        return "-"
    if summary.count == 1:
        return format_value(summary.median)
    return (
        f"{format_value(summary.median)} "
        f"[{format_value(summary.low)}-{format_value(summary.high)}]"
    )


def _cells(rows: list[Row], names: list[str], notes: dict[str, str]) -> list[list[str]]:
    """Return the header and one list of cells per row."""
    baseline, others = names[0], names[1:]
    header = ["workload", "metric", "better"]
    for index, name in enumerate(names):
        header.append(f"{name} median [min-max]")
        if index:
            header.append(f"{name}/{baseline}")
    lines = [header]
    for row in rows:
        cells = [
            row.workload + notes.get(row.workload, ""),
            row.metric,
            "higher" if higher_is_better(row.metric) else "lower",
            _cell(row.columns.get(baseline)),
        ]
        for other in others:
            cells.append(_cell(row.columns.get(other)))
            ratio = row.ratio(baseline, other)
            cells.append("-" if ratio is None else f"{ratio:.2f}")
        lines.append(cells)
    return lines


def format_table(rows: list[Row], names: list[str], notes: dict[str, str] | None = None) -> str:
    """Render rows as an aligned text table comparing each column with the first.

    Args:
        rows: The rows.
        names: Implementation names; the first is the baseline.
        notes: Text to append to some workload names, such as a footnote mark.

    Returns:
        The table, one line per row plus a header.
    """
    lines = _cells(rows, names, notes or {})
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = []
    for number, line in enumerate(lines):
        text.append(
            "  ".join(
                cell.ljust(width) if i < 3 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
        if number == 0:
            text.append("  ".join("-" * width for width in widths))
    return "\n".join(text)


def format_markdown(rows: list[Row], names: list[str], notes: dict[str, str] | None = None) -> str:
    """Render rows as a Markdown table comparing each column with the first.

    Args:
        rows: The rows.
        names: Implementation names; the first is the baseline.
        notes: Text to append to some workload names, such as a footnote mark.

    Returns:
        The table, without a trailing newline.
    """
    lines = _cells(rows, names, notes or {})
    header, body = lines[0], lines[1:]
    align = [":--" if i < 3 else "--:" for i in range(len(header))]
    return "\n".join(
        "| " + " | ".join(cell.replace("*", "\\*") for cell in line) + " |"
        for line in [header, align, *body]
    )
