"""The README's picture of the lab, made again: ``python bench/picture.py [--out bench/figures/lab.png]``.

On a throwaway local AWS (a temporary AWSLAB_HOME, instant profile, engines on): `awslab up
week6`, `awslab drill --report` (so the primaries are drawn where the failovers left them),
`awslab report` and `awslab diagram -o lab.svg`, then headless Chromium (the system's
``chromium``) screenshots the diagram at its own size. Prints where it wrote the PNG and the
report; removes the home unless --keep.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")


def awslab(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "awslab", *args], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"awslab {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()[-600:]}")


def screenshot(chromium: str, page: Path, png: Path, width: int, height: int, profile: Path) -> None:
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                    f"--window-size={width},{height}", page.as_uri()], capture_output=True, timeout=120, check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "bench" / "figures" / "lab.png"))
    parser.add_argument("--keep", action="store_true", help="Leave the home (and its report.html) for a look.")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs chromium from the system's packages (apt-get install chromium)")
    home = Path(tempfile.mkdtemp(prefix="awslab-picture-"))
    os.environ["AWSLAB_HOME"] = str(home)
    try:
        awslab("up", "week6")
        awslab("drill", "--report")
        awslab("report", "-o", str(home / "report.html"))
        awslab("diagram", "-o", str(home / "lab.svg"))
        size = re.search(r'<svg [^>]*width="(\d+)" height="(\d+)"', (home / "lab.svg").read_text())
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(chromium, home / "lab.svg", out, int(size.group(1)), int(size.group(2)), home / "chromium")
        print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB, {size.group(1)}x{size.group(2)}); "
              f"the report: {home / 'report.html'}" + ("" if args.keep else " (removed with the home)"))
        if not args.keep:
            awslab("down", "--yes", "--skip-final-snapshot", "--delete-snapshots")
    finally:
        if not args.keep:
            subprocess.run([sys.executable, "-m", "awslab", "local", "stop"], capture_output=True, timeout=120)
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
