"""The self-contained HTML report of an evaluation (tables, bar charts, images inline)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from .settings import METHOD_LABELS


# --------------------------------------------------------------------------- report


def _png_b64(img: np.ndarray) -> str:
    from PIL import Image

    from ..io.images import to_uint8

    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img_tag(img: np.ndarray | None) -> str:
    return "" if img is None else f'<img src="data:image/png;base64,{_png_b64(img)}">'


METRIC_INFO = {"psnr": ("PSNR (dB)", True), "ssim": ("SSIM", True), "ssim_gaussian": ("SSIM (Gaussian)", True),
               "lpips": ("LPIPS", False)}


def bar_chart_svg(means: dict, methods: Sequence[str], metric: str, labels: dict | None = None) -> str:
    """A small inline SVG bar chart of one metric's mean per method (missing values skipped)."""
    labels = labels or METHOD_LABELS
    label, higher = METRIC_INFO.get(metric, (metric, True))
    vals = [(m, means[m].get(metric)) for m in methods if means.get(m, {}).get(metric) is not None]
    width, bar_h, gap, left = 420, 22, 6, 150
    height = 30 + len(vals) * (bar_h + gap)
    top = max([abs(v) for _, v in vals] + [1e-9])
    colours = ["#8c8c8c", "#4c78a8", "#f58518", "#54a24b", "#b279a2"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<text x="4" y="16" font-size="13" font-weight="bold">{html.escape(label)} '
             f'({"higher" if higher else "lower"} is better)</text>']
    for r, (m, v) in enumerate(vals):
        y = 26 + r * (bar_h + gap)
        w = max(1.0, (width - left - 60) * abs(v) / top)
        parts.append(f'<text x="4" y="{y + 15}" font-size="12">{html.escape(labels.get(m, m))}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colours[r % len(colours)]}"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 15}" font-size="12">{v:.4g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _fmt(metrics: dict | None) -> str:
    if metrics is None:
        return "n/a"
    bits = []
    for k in ("psnr", "ssim", "ssim_gaussian", "lpips"):
        if k in metrics:
            v = metrics[k]
            name = {"psnr": "PSNR", "ssim": "SSIM", "ssim_gaussian": "SSIM-G", "lpips": "LPIPS"}[k]
            bits.append(f"{name} {'–' if v is None else f'{v:.3f}' if k != 'psnr' else f'{v:.2f}'}")
    return " · ".join(bits)


def write_report(path: str | Path, result: dict, images: dict[int, dict[str, np.ndarray]]) -> Path:
    """Write a self-contained ``report.html`` (PNG images embedded as base64, inline SVG charts).

    ``result``: the metrics.json content; ``images``: per held-out scene index, a dict
    ``{"gt": ..., "nearest_input": ..., <method>: ...}`` of float ``H x W x 3`` in [0, 1].
    """
    from ..io.runs import atomic_write_text

    methods = result["methods"]
    means = result["mean"]
    labels = result.get("method_labels") or METHOD_LABELS
    metric_keys = [k for k in ("psnr", "ssim", "ssim_gaussian", "lpips")
                   if any(means[m].get(k) is not None for m in methods)]
    e = html.escape
    h = ["<!DOCTYPE html><html><head><meta charset='utf-8'>",
         f"<title>nvs eval: {e(result['scene'])}</title><style>",
         "body{font-family:sans-serif;margin:20px;color:#222}table{border-collapse:collapse}",
         "td,th{border:1px solid #ccc;padding:4px 8px;text-align:center;vertical-align:top;font-size:13px}",
         "img{image-rendering:pixelated;width:160px;height:160px}.best{font-weight:bold;background:#e8f4e8}",
         ".note{color:#666;font-size:13px}</style></head><body>",
         f"<h1>nvs eval: {e(result['scene'])}</h1>",
         f"<p class='note'>dataset {e(str(result['dataset']))} · model {e(str(result['model'].get('spec')))} · "
         f"holdout {e(result['holdout']['spec'])} · {len(result['views'])} held-out views at "
         f"{result['size']} px · seed {result['seed']} · k = {result['k']} · "
         f"{e(result['lpips']['message'])}</p>",
         "<h2>Summary (mean over held-out views)</h2><table><tr><th>method</th><th>views</th>"]
    h += [f"<th>{e(METRIC_INFO[k][0])} {'↑' if METRIC_INFO[k][1] else '↓'}</th>" for k in metric_keys]
    h.append("</tr>")
    best = {}
    for k in metric_keys:
        vals = [(means[m][k], m) for m in methods if means[m].get(k) is not None]
        if vals:
            best[k] = (max if METRIC_INFO[k][1] else min)(vals)[1]
    for m in methods:
        h.append(f"<tr><td>{e(labels.get(m, m))}</td><td>{means[m]['count']}</td>")
        for k in metric_keys:
            v = means[m].get(k)
            cls = " class='best'" if best.get(k) == m else ""
            h.append(f"<td{cls}>{'n/a' if v is None else f'{v:.4f}'}</td>")
        h.append("</tr>")
    h.append("</table><h2>Chart</h2><div>")
    h += [bar_chart_svg(means, methods, k, labels) for k in metric_keys]
    h.append("</div><h2>Held-out views</h2><table><tr><th>view</th><th>ground truth</th><th>nearest input</th>")
    shown = [m for m in methods if m != "nearest"]
    h += [f"<th>{e(labels.get(m, m))}</th>" for m in shown]
    h.append("</tr>")
    for v in result["views"]:
        ims = images.get(v["index"], {})
        h.append(f"<tr><td>{v['index']}<br>{e(v['name'])}<br><span class='note'>{v['num_inputs']} inputs</span></td>")
        gt = ims.get("gt")
        h.append(f"<td>{_img_tag(gt)}</td>")
        ni = ims.get("nearest_input")
        nm = v["metrics"].get("nearest") if "nearest" in methods else None
        h.append(f"<td>{_img_tag(ni)}"
                 f"<br>view {v['nearest']}<br>{e(_fmt(nm)) if nm else ''}</td>")
        for m in shown:
            im = ims.get(m)
            body = "n/a" if im is None else _img_tag(im)
            h.append(f"<td>{body}<br>{e(_fmt(v['metrics'].get(m)))}</td>")
        h.append("</tr>")
    h.append("</table>")
    if result.get("skipped"):
        h.append("<h2>Skipped views</h2><ul>")
        h += [f"<li>{e(str(s['index']))}: {e(s['reason'])}</li>" for s in result["skipped"]]
        h.append("</ul>")
    h.append(f"<p class='note'>scene scale sources: {e(', '.join(result['scene_scale']['sources']))}. "
             "PSNR/SSIM with data range 1 (SSIM: scikit-image defaults, 7x7 uniform window); "
             "LPIPS on [-1, 1] inputs.</p></body></html>")
    return atomic_write_text(Path(path), "".join(h))
