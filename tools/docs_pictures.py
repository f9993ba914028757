"""Make the documentation site's pictures with the project's own commands.

Runs `headshot demo` into a temporary folder (a few minutes on 2 CPU cores), then writes into
docs/: `verify-output.png` (what `headshot verify` prints for a delivered headshot and for a copy
re-saved without metadata, drawn as a terminal), `audit-report.png` and `audit-showcase.jpg`
(the audit report and the demo's showcase report) and `study-trajectory.png` (the study
report), the reports screenshotted by Debian's chromium through Playwright, as the page tests
do. Each is downscaled to 800 px wide so the files stay under 150 KB.

    python tools/docs_pictures.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

DOCS = Path(__file__).resolve().parent.parent / "docs"
CHROMIUM = "/usr/bin/chromium"
MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
WIDTH = 800


def headshot(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "headshot", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"headshot {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def verify_transcript(work: Path) -> list[str]:
    """The verify lines as a person types them in the folder that holds `outputs/`."""
    headshots = sorted((work / "outputs" / "demo" / "headshots").glob("studio-grey*.jpg"))
    signed = headshots[0].relative_to(work)
    Image.open(work / signed).convert("RGB").save(work / "stripped-copy.jpg", quality=80)
    anchors = "outputs/keys/dev-ca.pem"
    return [
        f"$ headshot verify {signed} --trust-anchors {anchors}",
        *headshot("verify", str(signed), "--trust-anchors", anchors, cwd=work).splitlines(),
        "$ headshot verify stripped-copy.jpg    # the same headshot, re-saved without any metadata",
        *headshot("verify", "stripped-copy.jpg", cwd=work).splitlines(),
    ]


def draw_terminal(lines: list[str], out: Path, columns: int = 104) -> None:
    """The transcript on a dark terminal, each result broken at its ` | ` separators."""
    rows: list[tuple[str, str]] = []
    for line in lines:
        if line.startswith("$"):
            rows.append(("command", line))
            continue
        for number, part in enumerate(line.split(" | ")):
            for index, piece in enumerate(textwrap.wrap(part, columns - 4)):
                lead = "" if number == 0 else ("  | " if index == 0 else "    ")
                rows.append(("output", lead + piece))
    font = ImageFont.truetype(MONO, 13)
    char, line_height = font.getbbox("M")[2], 18
    image = Image.new("RGB", (char * columns + 24, line_height * len(rows) + 24), (30, 30, 30))
    pen = ImageDraw.Draw(image)
    for index, (kind, text) in enumerate(rows):
        colour = (140, 200, 255) if kind == "command" else (225, 225, 225)
        if kind == "output" and "AI-generated" in text:
            colour = (150, 230, 150)
        pen.text((12, 12 + index * line_height), text, font=font, fill=colour)
    image.save(out, optimize=True)


def screenshot(pages: list[tuple[Path, Path, int]]) -> None:
    """Each report's top `height` px at 1100 px wide, downscaled to WIDTH."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        for report, out, height in pages:
            page = browser.new_page(viewport={"width": 1100, "height": height})
            page.goto(report.as_uri())
            shot = out.with_suffix(".full.png")
            page.screenshot(path=str(shot))
            image = Image.open(shot).convert("RGB")
            shot.unlink()
            image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
            if out.suffix == ".jpg":
                image.save(out, quality=80, optimize=True, progressive=True)
            else:
                image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="run the demo here and keep it (default: a temp folder)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="headshot-docs-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONPATH", str(DOCS.parent))
    if not (work / "outputs" / "demo" / "headshots").is_dir():
        headshot("demo", "--outputs", "outputs", cwd=work)
    draw_terminal(verify_transcript(work), DOCS / "verify-output.png")
    audit = work / "outputs" / "demo" / "audit"
    screenshot(
        [
            (audit / "report.html", DOCS / "audit-report.png", 1270),
            (audit / "showcase" / "report.html", DOCS / "audit-showcase.jpg", 1060),
            (audit / "study" / "report.html", DOCS / "study-trajectory.png", 1190),
        ]
    )
    for name in ("verify-output.png", "audit-report.png", "audit-showcase.jpg", "study-trajectory.png"):
        print(f"{DOCS / name}: {(DOCS / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
