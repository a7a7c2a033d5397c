"""Rate-distortion curves drawn with Pillow (no plotting library): one panel per sequence, the
rate on a log axis (kB per frame by default, or bits per pixel), PSNR on a linear one."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLOURS = {"holoscope": (214, 39, 40), "V3": (31, 119, 180), "reference": (90, 90, 90), "x264 medium": (31, 119, 180),
           "x264 veryslow": (23, 190, 207), "x265 medium": (44, 160, 44), "x265 veryslow": (148, 103, 189)}
PANEL = (560, 420)
MARGIN = (70, 30, 20, 60)  # left, top, right, bottom


def _nice_ticks(lo: float, hi: float) -> list[float]:
    ticks = []
    for exponent in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10**exponent
            if lo <= v <= hi:
                ticks.append(v)
    return ticks


def draw_panel(draw: ImageDraw.ImageDraw, origin: tuple[int, int], title: str, series: list[dict], psnr_cap: float,
               font: ImageFont.ImageFont, labels: tuple[str, str] = ("kB per frame (log)", "rendered PSNR (dB)"),
               ) -> None:  # fmt: skip
    """``series``: {"label", "group" (colour key), "points": [(rate, psnr, name)], "line": bool}."""
    ox, oy = origin
    w, h = PANEL
    left, top, right, bottom = MARGIN
    pts = [p for s in series for p in s["points"]]
    xs = [p[0] for p in pts]
    ys = [min(p[1], psnr_cap) for p in pts]
    x_lo, x_hi = min(xs) / 1.3, max(xs) * 1.3
    y_lo, y_hi = math.floor(min(ys) - 1), math.ceil(max(ys) + 1)

    def at(x: float, y: float) -> tuple[float, float]:
        fx = (math.log(x) - math.log(x_lo)) / (math.log(x_hi) - math.log(x_lo))
        fy = (min(y, psnr_cap) - y_lo) / (y_hi - y_lo)
        return ox + left + fx * (w - left - right), oy + top + (1 - fy) * (h - top - bottom)

    x0, y0 = ox + left, oy + h - bottom
    draw.rectangle([x0, oy + top, ox + w - right, y0], outline=(0, 0, 0))
    for t in _nice_ticks(x_lo, x_hi):
        x, _ = at(t, y_lo)
        draw.line([x, y0, x, y0 + 4], fill=(0, 0, 0))
        draw.text((x - 12, y0 + 6), f"{t:g}", fill=(0, 0, 0), font=font)
    step = max(1, round((y_hi - y_lo) / 8))
    for t in range(int(y_lo), int(y_hi) + 1, step):
        _, y = at(x_lo, t)
        draw.line([x0 - 4, y, x0, y], fill=(0, 0, 0))
        draw.text((x0 - 30, y - 6), f"{t}", fill=(0, 0, 0), font=font)
    draw.text((ox + w // 2 - 60, oy + h - 22), labels[0], fill=(0, 0, 0), font=font)
    draw.text((ox + 4, oy + top - 18), labels[1], fill=(0, 0, 0), font=font)
    draw.text((ox + left + 6, oy + top + 4), title, fill=(0, 0, 0), font=font)
    legend_y = oy + top + 22
    for s in series:
        colour = COLOURS.get(s["group"], (0, 0, 0))
        coords = [at(p[0], p[1]) for p in s["points"]]
        if s.get("line") and len(coords) > 1:
            draw.line(coords, fill=colour, width=2)
        for (x, y), p in zip(coords, s["points"]):
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
            if p[2]:
                label = p[2] if p[1] <= psnr_cap else f"{p[2]} ({p[1]:.0f} dB, off the scale)"
                draw.text((x + 5, y - 12), label, fill=colour, font=font)
        draw.line([ox + left + 8, legend_y + 6, ox + left + 24, legend_y + 6], fill=colour, width=2)
        draw.text((ox + left + 28, legend_y), s["label"], fill=colour, font=font)
        legend_y += 14


def plot(panels: list[tuple[str, list[dict]]], path: str | Path, psnr_cap: float = 70.0,
         labels: tuple[str, str] = ("kB per frame (log)", "rendered PSNR (dB)")) -> Path:
    font = ImageFont.load_default()
    image = Image.new("RGB", (PANEL[0] * len(panels), PANEL[1]), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for i, (title, series) in enumerate(panels):
        draw_panel(draw, (i * PANEL[0], 0), title, series, psnr_cap, font, labels)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
