"""Make the README's pictures: a finished sweep as the MLflow UI shows it (`alexp ui`), its report figure and a
figure of the claim study.

    python docs/make_pictures.py            # needs Chromium (Debian: apt-get install chromium); ~2 min on 2 cores

In a temporary folder it runs the README's headline sweep (random, margin, cluster_margin, boundary_pairs x 5
seeds = 20 runs on the synthetic pool), `alexp report`, then `alexp ui`, and screenshots both addresses
`alexp ui` prints (every run; one line and band per strategy) with headless Chromium. Writes small palette
PNGs: docs/mlflow-ui.png, docs/mlflow-ui-by-strategy.png, docs/report-kappa.png and docs/claim-clickbait.png
(the committed figure of simulations/reduction_claim, scaled down). The MLflow Assistant panel, which MLflow 3
opens on the right on a first visit, is cropped off.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

DOCS = Path(__file__).resolve().parent
SWEEP = ["-m", "acquisition=random,margin,cluster_margin,boundary_pairs", "seed=0,1,2,3,4"]
CLAIM_FIGURE = DOCS.parent / "simulations" / "reduction_claim" / "claim-clickbait-kappa_vs_labels.png"
WINDOW = (1900, 1100)
ASSISTANT_WIDTH = 480  # the Assistant panel's share of the window's right edge, cropped off
WIDTH = 1200  # pixels across in the README


def alexp(*args: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "alexp", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"alexp {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("make_pictures: no Chromium found; install it (Debian: apt-get install chromium)")


def screenshot(url: str, out: Path) -> None:
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={WINDOW[0]},{WINDOW[1]}", "--virtual-time-budget=60000",
                    f"--screenshot={out}", url], check=True, capture_output=True)


def save_small(image: Image.Image, out: Path) -> None:
    """Scale to WIDTH pixels across and keep 256 colours: a readable picture of some 100 KB."""
    height = round(image.height * WIDTH / image.width)
    image.convert("RGB").resize((WIDTH, height), Image.LANCZOS).quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


def main() -> None:
    chromium()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.pop("MLFLOW_TRACKING_URI", None)  # the temporary folder's own store
        print("running the sweep ...", flush=True)
        print(alexp(*SWEEP, cwd=work))
        alexp("report", cwd=work)
        with Image.open(work / "reports" / "alexp" / "kappa_vs_labels.png") as figure:
            save_small(figure, DOCS / "report-kappa.png")
        with Image.open(CLAIM_FIGURE) as figure:
            save_small(figure, DOCS / "claim-clickbait.png")
        ui = subprocess.Popen([sys.executable, "-m", "alexp", "ui", "--port", "5077"], cwd=work,
                              stdout=subprocess.PIPE, text=True)
        try:
            urls = []
            for line in ui.stdout:
                print(line, end="", flush=True)
                urls += re.findall(r"http://\S+/alexp/open\?\S+", line)
                if "Ctrl-C" in line:
                    break
            if len(urls) != 2:
                sys.exit(f"make_pictures: alexp ui printed {len(urls)} addresses, not 2 (every run, by strategy)")
            for url, name in zip(urls, ("mlflow-ui.png", "mlflow-ui-by-strategy.png")):
                shot = work / name
                screenshot(url, shot)
                with Image.open(shot) as image:
                    save_small(image.crop((0, 0, image.width - ASSISTANT_WIDTH, image.height)), DOCS / name)
        finally:
            ui.terminate()
            ui.wait(timeout=30)


if __name__ == "__main__":
    main()
