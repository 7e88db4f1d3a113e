"""Chart geometry for the insight page, drawn as SVG by templates/_charts.html.

Charts are computed here and drawn by the app itself (no charting library,
no CDN): the service may run without internet. Coordinates are in the
SVG's own units; the SVG scales to the page width.
"""
from . import LABELS

WIDTH = 640
HEIGHT = 220
LEFT = 52      # room for the y-axis numbers
BOTTOM = 40    # room for the dates
TOP = 10


def nice_max(value):
    """A round number at least `value`, for the top of an axis."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _columns(n):
    """x position and width of each of n columns across the plot area."""
    plot = WIDTH - LEFT - 10
    slot = plot / max(n, 1)
    width = max(slot * 0.7, 1)
    return [(LEFT + i * slot + (slot - width) / 2, width) for i in range(n)], slot


def _date_ticks(days, columns):
    """At most about eight date labels, so they never overlap."""
    every = max(1, -(-len(days) // 8))
    return [{"x": x + w / 2, "text": day[5:]} for i, (day, (x, w)) in
            enumerate(zip(days, columns)) if i % every == 0]


def per_day(counts):
    """Bars for {day: count}: one bar per day."""
    days = sorted(counts)
    top = nice_max(max(counts.values(), default=0))
    plot_h = HEIGHT - TOP - BOTTOM
    columns, _slot = _columns(len(days))
    bars = []
    for day, (x, w) in zip(days, columns):
        h = plot_h * counts[day] / top
        bars.append({"x": round(x, 1), "y": round(TOP + plot_h - h, 1), "w": round(w, 1),
                     "h": round(h, 1), "day": day, "count": counts[day]})
    return {"width": WIDTH, "height": HEIGHT, "bars": bars, "ticks": _date_ticks(days, columns),
            "grid": [{"y": round(TOP + plot_h * (1 - f), 1), "value": f"{top * f:g}"}
                     for f in (0, 0.5, 1)],
            "left": LEFT, "right": WIDTH - 10, "base": TOP + plot_h}


def label_shares(counts):
    """100% stacked bars for {day: {label: count}}: each day's mix of labels."""
    days = sorted(counts)
    plot_h = HEIGHT - TOP - BOTTOM
    columns, _slot = _columns(len(days))
    stacks = []
    for day, (x, w) in zip(days, columns):
        total = sum(counts[day].values())
        y = TOP + plot_h
        parts = []
        for label in LABELS:
            n = counts[day].get(label, 0)
            h = plot_h * n / total if total else 0
            y -= h
            parts.append({"label": label, "count": n, "share": n / total if total else 0,
                          "y": round(y, 1), "h": round(h, 1)})
        stacks.append({"x": round(x, 1), "w": round(w, 1), "day": day, "total": total,
                       "parts": parts})
    return {"width": WIDTH, "height": HEIGHT, "stacks": stacks,
            "ticks": _date_ticks(days, columns),
            "grid": [{"y": round(TOP + plot_h * (1 - f), 1), "value": f"{f:.0%}"}
                     for f in (0, 0.5, 1)],
            "left": LEFT, "right": WIDTH - 10, "base": TOP + plot_h}


def agreement(rows):
    """Horizontal bars for [(model_version, agreed, total)]: the share of
    feedback that confirmed the model's answer, per model version. Each
    version's name and numbers sit above its bar, so long names never clip."""
    row_h = 52
    plot_w = WIDTH - 10
    bars = []
    for i, (version, agreed, total) in enumerate(rows):
        rate = agreed / total if total else 0
        top = i * row_h
        bars.append({"version": version, "agreed": agreed, "total": total, "rate": rate,
                     "text_y": top + 18, "y": top + 26, "h": 18, "x": 0,
                     "w": round(plot_w * rate, 1), "full": plot_w})
    return {"width": WIDTH, "height": max(len(rows), 1) * row_h, "bars": bars, "plot_w": plot_w}
