"""The gallery's images (the README's figure, and the docs' under docs/img): the analysis's own
PNGs, shrunk for a web page (at most 1200 px wide, a 128-colour palette: charts have few
colours, so nothing readable is lost).

    python -m wdsweep -m experiment=seed_regression hydra.sweep.dir=multirun/seed_regression
    python -m analysis multirun/seed_regression
    python -m wdsweep -m experiment=lp_vs_global hydra.sweep.dir=multirun/lp_vs_global
    python -m analysis multirun/lp_vs_global
    python analysis/gallery/make.py multirun/seed_regression/analysis multirun/lp_vs_global/analysis

writes weight_histograms.png and regression_fits.png from the first report folder,
test_error_vs_lambda.png and weight_histograms_lp_vs_global.png from the second.
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
DOCS_IMAGES = HERE.parent.parent / "docs" / "img"  # MkDocs serves only what lies under docs/
WIDTH = 1200
PICKS = [  # (report index, the analysis's file, the gallery's file)
    (0, "weight_histograms.png", "weight_histograms.png"),
    (0, "regression_fits.png", "regression_fits.png"),
    (1, "test_error_vs_lambda.png", "test_error_vs_lambda.png"),
    (1, "weight_histograms.png", "weight_histograms_lp_vs_global.png"),
]


def shrink(source: Path, target: Path) -> None:
    """`source` at most WIDTH px wide, in a 128-colour palette, as `target`."""
    image = Image.open(source).convert("RGB")
    if image.width > WIDTH:
        image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(target, optimize=True)


def main(reports) -> None:
    for index, name, out in PICKS:
        shrink(Path(reports[index]) / name, HERE / out)
        print(f"{HERE / out}: {(HERE / out).stat().st_size // 1024} KB")
        if DOCS_IMAGES.is_dir():  # a source checkout
            (DOCS_IMAGES / out).write_bytes((HERE / out).read_bytes())


if __name__ == "__main__":
    main(sys.argv[1:])
