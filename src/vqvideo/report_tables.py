"""The results tables of ``snakemake --report`` (``vqvideo report-tables``): FVD and quality as one HTML page.

Reads ``fvd_{R}.json`` (one per resolution; see :mod:`vqvideo.metrics.evaluate`) and, if there,
``quality.json`` from the results folder, and writes a small self-contained HTML file (every value escaped)
that the report shows beside its caption: FVD and KVD (mean +- std over the folds), FVD*/KVD* (against the
reconstructions), and the copy-last-frame and reconstruction brackets, one row per resolution and metric, with
the sanity block's warnings; then PSNR/SSIM of our samples, the copy-last baseline, the reconstructions and the
true-top diagnostic, and ``quality_per_frame.png`` embedded (base64) so the page stays one file.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from vqvideo.runtime.files import atomic_write_text

STYLE = ("body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin-bottom:1.5em}"
         "td,th{border:1px solid #bbb;padding:.3em .7em;text-align:right}th{background:#eee}"
         "td:first-child,th:first-child{text-align:left}")


def _fmt(entry: dict | None) -> str:
    """``value +- std`` of an FVD entry (a dict with value/std), or a dash."""
    if not entry or entry.get("value") is None:
        return "-"
    std = entry.get("std")
    return f"{entry['value']:.1f} &plusmn; {std:.1f}" if std is not None else f"{entry['value']:.1f}"


def _fmt_small(entry: dict | None) -> str:
    """``value +- std`` with 4 significant digits (KVD's scale varies over orders of magnitude)."""
    if not entry or entry.get("value") is None:
        return "-"
    return f"{entry['value']:.4g} &plusmn; {entry.get('std', 0.0):.2g}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _flat(d, prefix="") -> dict[str, object]:
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = v
    return out


def _metric_rows(r: dict) -> list[list[str]]:
    """One row per metric (FVD, KVD) of one resolution's JSON: ours, ours vs reconstructions, the brackets."""
    base, n = r.get("baselines") or {}, r.get("n_videos") or {}
    rows = []
    for metric, fmt in (("fvd", _fmt), ("kvd", _fmt_small)):
        ours = r.get(metric) or (r if metric == "fvd" else None)
        if ours is None:
            continue
        rows.append([html.escape(f"{r.get('resolution')}x{r.get('resolution')}"), metric.upper(), fmt(ours),
                     fmt(r.get(f"{metric}_star")), fmt((base.get("copy_last") or {}).get(metric)),
                     fmt((base.get("reconstructions") or {}).get(metric)),
                     html.escape(str(n.get("clips", "-"))), html.escape(str(len(ours.get("folds") or [])))])
    return rows


QUALITY_COLUMNS = (("samples", "ours"), ("copy_last", "copy last frame"),
                   ("reconstructions", "VQ-VAE reconstructions"), ("true_top", "true top, sampled bottom"))
QUALITY_ROWS = ("psnr", "best_of_k_psnr", "psnr_capped_mean", "ssim", "best_of_k_ssim", "identical_frames",
                "n_videos", "n_clips")


def _quality_html(quality: dict, curve: bytes | None) -> list[str]:
    """PSNR/SSIM of each set (one column each), the diversity and the embedded per-frame curve."""
    entries = {**quality, "true_top": (quality.get("diagnostics") or {}).get("true_top_sampled_bottom")}
    columns = [(key, title) for key, title in QUALITY_COLUMNS if entries.get(key)]
    frames = quality.get("predicted_frames")
    parts = [f"<h3>Predicted frames{html.escape(f' {frames[0]}-{frames[1]}' if frames else '')}</h3>"]
    rows = []
    for metric in QUALITY_ROWS:
        values = [_flat(entries[key]).get(metric) for key, _ in columns]
        if any(v is not None for v in values):
            rows.append([html.escape(metric)] + [f"{v:.4g}" if v is not None else "-" for v in values])
    parts.append(_table(["metric"] + [title for _, title in columns], rows))
    how = (quality.get("aggregation") or {}).get("psnr")
    if how:
        parts.append(f"<p>PSNR: {html.escape(how)}.</p>")
    div = (quality.get("diversity") or {}).get("mean_pairwise_1_minus_ssim")
    if div is not None:
        parts.append(f"<p>Diversity (mean pairwise 1 - SSIM between samples of a clip): {div:.4f}</p>")
    if curve:
        data = base64.b64encode(curve).decode("ascii")
        parts.append(f"<p><img alt='PSNR and SSIM per predicted frame' src='data:image/png;base64,{data}'></p>")
    return parts


def render(fvd: list[dict], quality: dict | None, curve: bytes | None = None) -> str:
    """The HTML page for the FVD results (one dict per resolution), the quality results and the per-frame
    curve (PNG bytes, embedded)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><style>{STYLE}</style></head><body>",
             "<h3>FVD and KVD (lower is better; mean &plusmn; std over the folds)</h3>"]
    rows = [row for r in sorted(fvd, key=lambda r: r.get("resolution", 0)) for row in _metric_rows(r)]
    parts.append(_table(["resolution", "metric", "ours", "ours vs reconstructions (FVD*, KVD*)",
                         "copy last frame", "VQ-VAE reconstructions", "clips", "folds"], rows))
    notes = [w for r in fvd for w in (r.get("sanity") or {}).get("warnings", [])]
    parts.extend(f"<p><b>Warning:</b> {html.escape(w)}</p>" for w in notes)
    if quality:
        parts.extend(_quality_html(quality, curve))
    parts.append("</body></html>\n")
    return "".join(parts)


def report_tables(results: str | Path, out: str | Path, fvd_files: list[Path] | None = None,
                  quality_file: Path | None = None, curve_file: Path | None = None) -> Path:
    """Write ``out`` from ``fvd_files``, ``quality_file`` and ``curve_file`` (if there; defaults:
    ``results``/fvd_*.json, quality.json and quality_per_frame.png); return ``out``."""
    results = Path(results)
    files = sorted(results.glob("fvd_*.json") if fvd_files is None else map(Path, fvd_files))
    fvd = [json.loads(Path(p).read_text()) for p in files]
    if not fvd:
        raise FileNotFoundError(f"no fvd_*.json in {results} (run vqvideo evaluate first)")
    q = Path(quality_file) if quality_file else results / "quality.json"
    png = Path(curve_file) if curve_file else results / "quality_per_frame.png"
    quality = json.loads(q.read_text()) if q.is_file() else None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, render(fvd, quality, png.read_bytes() if png.is_file() else None))
    return out
