"""Self-contained HTML pages: images and matplotlib figures embedded as data URIs."""

from __future__ import annotations

import base64
import html
import io
import textwrap

PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
table { display: block; max-width: 100%; overflow-x: auto; }  /* a wide table scrolls in place */
td, th { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th { background: #f4f4f4; }
td.flag { background: #fde2e2; }
img { max-width: 100%; image-rendering: auto; }
figure { display: inline-block; margin: 0.5rem; vertical-align: top; }
figcaption { font-size: 0.8rem; color: #555; }
"""


def png_data_uri(image) -> str:
    """A PIL image as an inline `data:image/png;base64,...` URI."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def figure_data_uri(figure) -> str:
    """A matplotlib figure as an inline PNG URI (the figure is closed afterwards)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def wrapped_title(figure, text: str, fontsize: float = 9) -> None:
    """`text` as the figure's title, each line wrapped to the figure's width (a long list of
    names would otherwise run past both edges and be cut off in the saved image)."""
    characters = int(figure.get_figwidth() * 72 / (fontsize * 0.6))  # a character ~0.6 em wide
    lines = [textwrap.fill(line, characters) for line in text.split("\n")]
    figure.suptitle("\n".join(lines), fontsize=fontsize)


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def html_page(title: str, body: str) -> str:
    """A whole page: nothing external is loaded, so it can be mailed or archived as is."""
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{PAGE_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )
