"""The SVG bar chart of a run: each system relative to ossfs, one panel per profile."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.reporting import fmt
from bench.samples import Key, Sample
from bench.workloads import Workload


def chart_svg(
    results: dict[Key, Sample],
    systems: Sequence[str],
    profiles: Sequence[str],
    chosen: Sequence[Workload],
) -> str:
    """Grouped bars, one panel per profile: each system's figure relative to ossfs's (= 1x) on a
    log scale from 1/30x to 30x (lower-is-better figures inverted, so taller is always better),
    labelled with the figure itself."""
    colors = {
        "ossfs": "#d9480f",
        "oss2": "#1c7ed6",
        "s3fs": "#2f9e44",
        "rclone": "#7048e8",
        "nullfs": "#868e96",
        "local": "#343a40",
    }
    span = math.log10(30.0)
    bar_w, gap, plot_h, left = 16, 30, 200, 70
    panel_h = plot_h + 110
    n_max = max(1, *(len(chosen) for _ in profiles))
    group_w = bar_w * len(systems) + gap
    width = left + group_w * n_max + 20
    height = 60 + panel_h * len(profiles)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="14">ossfs benchmark suite: each system relative to '
        "ossfs (log scale, taller is better; labels: the measured figure)</text>",
    ]
    for i, s in enumerate(systems):
        x = left + i * 80
        out.append(f'<rect x="{x}" y="28" width="10" height="10" fill="{colors.get(s, "#000")}"/>')
        out.append(f'<text x="{x + 14}" y="37">{s}</text>')

    def score(sample: Sample | None, w: Workload) -> float | None:
        if sample is None or not sample.ok or not sample.value:
            return None
        return sample.value if w.higher_is_better else 1.0 / sample.value

    for p_index, profile in enumerate(profiles):
        top = 60 + p_index * panel_h + 20
        mid = top + plot_h / 2  # the 1x line
        out.append(f'<text x="4" y="{top - 6}" font-size="13">{profile}</text>')
        for tick in (1 / 30, 0.1, 1 / 3, 1.0, 3.0, 10.0, 30.0):
            y = mid - plot_h / 2 * math.log10(tick) / span
            label = f"{tick:g}x" if tick >= 1 else f"1/{1 / tick:.0f}x"
            dash = "" if tick == 1.0 else ' stroke-dasharray="2,3"'
            out.append(
                f'<line x1="{left - 4}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" '
                f'stroke="#bbb"{dash}/>'
            )
            out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
        base_y = top + plot_h
        for g, w in enumerate(chosen):
            x0 = left + g * group_w
            ref = score(results.get((profile, w.name, "ossfs")), w)
            if ref is None:
                continue
            for i, s in enumerate(systems):
                sample = results.get((profile, w.name, s))
                value = score(sample, w)
                if value is None or sample is None:
                    continue
                rel = min(max(math.log10(value / ref) / span, -1.0), 1.0)
                y = mid - plot_h / 2 * rel
                x = x0 + i * bar_w
                out.append(
                    f'<rect x="{x}" y="{y:.1f}" width="{bar_w - 2}" height="{base_y - y:.1f}" '
                    f'fill="{colors.get(s, "#000")}"><title>{profile} {w.name} {s}: '
                    f"{fmt(sample.value, w.unit)} {w.unit}</title></rect>"
                )
                cx, cy = x + bar_w / 2 + 3, y - 3
                out.append(
                    f'<text x="{cx:.1f}" y="{cy:.1f}" font-size="8" '
                    f'transform="rotate(-90 {cx:.1f} {cy:.1f})">{fmt(sample.value, w.unit)}</text>'
                )
            label_x = x0 + bar_w * len(systems) / 2
            out.append(
                f'<text x="{label_x:.1f}" y="{base_y + 14}" text-anchor="end" '
                f'transform="rotate(-30 {label_x:.1f} {base_y + 14})">{w.name} ({w.unit})</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"
