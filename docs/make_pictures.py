"""Make the README's pictures: a finished sweep as the MLflow UI shows it (`alexp ui`), and its report figure.

    python docs/make_pictures.py            # needs Chromium (Debian: apt-get install chromium); ~3 min on 2 cores

In a temporary folder it runs a sweep (random, margin and boundary_pairs x 3 seeds on the synthetic pool),
`alexp report`, then `alexp ui`, and screenshots the address `alexp ui` prints with headless Chromium. Writes
docs/mlflow-ui.png and docs/report-kappa.png (small palette PNGs). The MLflow Assistant panel, which MLflow 3
opens on the right on a first visit from this machine, is cropped off.
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
SWEEP = ["-m", "acquisition=random,margin,boundary_pairs", "seed=0,1,2"]
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
    """Scale to WIDTH pixels across and keep 128 colours: a readable picture of some 100 KB."""
    height = round(image.height * WIDTH / image.width)
    image.convert("RGB").resize((WIDTH, height), Image.LANCZOS).quantize(128).save(out, optimize=True)
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
        ui = subprocess.Popen([sys.executable, "-m", "alexp", "ui", "--port", "5077"], cwd=work,
                              stdout=subprocess.PIPE, text=True)
        try:
            url = None
            for line in ui.stdout:
                print(line, end="", flush=True)
                if match := re.search(r"http://\S+viewStateShareKey=\S+", line):
                    url = match.group(0)
                    break
            if url is None:
                sys.exit("make_pictures: alexp ui printed no address")
            shot = work / "ui.png"
            screenshot(url, shot)
            with Image.open(shot) as image:
                save_small(image.crop((0, 0, image.width - ASSISTANT_WIDTH, image.height)), DOCS / "mlflow-ui.png")
        finally:
            ui.terminate()
            ui.wait(timeout=30)


if __name__ == "__main__":
    main()
