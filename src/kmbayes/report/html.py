"""A self-contained HTML copy of the report, figures embedded as base64 PNG.

The Markdown the report writes uses a small subset (headings, paragraphs,
bullet and numbered lists, pipe tables, fenced code, images, links, ``**``,
``_``/``*`` and backticks), so it is converted here rather than with a
Markdown package the project does not depend on. Images are read from disk
and inlined, so the file displays anywhere without its ``figures/`` folder.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

CSS = """
body{font-family:Georgia,'Times New Roman',serif;max-width:60em;margin:2em auto;padding:0 1em;
line-height:1.45;color:#111;background:#fff}
h1,h2,h3{font-family:Helvetica,Arial,sans-serif;line-height:1.2}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1.05em}
table{border-collapse:collapse;margin:.8em 0;font-size:.85em;font-family:Helvetica,Arial,sans-serif}
th,td{border:1px solid #bbb;padding:.25em .5em;vertical-align:top}th{background:#eee;text-align:left}
td{text-align:right}td:first-child,td:nth-child(2){text-align:left}
pre{background:#f4f4f4;padding:.6em;overflow-x:auto;font-size:.8em}
code{font-size:.9em}figure{margin:1em 0}img{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#333}.generated{color:#555;font-size:.85em}
"""


def _inline(text: str) -> str:
    """Escape and convert inline Markdown (code, bold, italics, links)."""
    if len(text) > 2 and text[0] == text[-1] == "_" and text[1] != "_":  # a whole italic line (may hold code)
        return f"<em>{_inline(text[1:-1])}</em>"
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        s = html.escape(part, quote=False)
        s = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", s)
        s = re.sub(r"(?<![\w_])_(?!\s)(.+?)(?<!\s)_(?![\w_])", r"<em>\1</em>", s)
        out.append(s)
    return "".join(out)


def _image(alt: str, src: str, base: Path) -> str:
    path = (base / src).resolve()
    if path.suffix.lower() == ".png" and path.is_file():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        uri = f"data:image/png;base64,{data}"
    else:  # not embeddable: say so rather than leave a broken link
        return f"<p><em>Figure not available: {html.escape(src)}</em></p>"
    return (f'<figure><img alt="{html.escape(alt)}" src="{uri}">'
            f"<figcaption>{_inline(alt)}</figcaption></figure>")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_to_html(md: str, base: Path, title: str) -> str:
    """Convert the report's Markdown to a standalone HTML document.

    Parameters
    ----------
    md : str
        The report text.
    base : Path
        Directory the Markdown's relative image paths are relative to.
    title : str
        The document title.
    """
    lines = md.splitlines()
    out: list[str] = []
    i = 0
    para: list[str] = []

    def flush():
        if para:
            out.append("<p>" + _inline(" ".join(para)) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if not s:
            flush()
            i += 1
            continue
        if s.startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            out.append("<pre><code>" + html.escape("\n".join(lines[i + 1:j])) + "</code></pre>")
            i = j + 1
            continue
        if m := re.match(r"^(#{1,6})\s+(.*)$", s):
            flush()
            n = len(m.group(1))
            anchor = re.sub(r"[^a-z0-9]+", "-", m.group(2).lower()).strip("-")
            out.append(f'<h{n} id="{anchor}">{_inline(m.group(2))}</h{n}>')
            i += 1
            continue
        if m := re.match(r"^!\[([^\]]*)\]\(([^)]+)\)$", s):
            flush()
            out.append(_image(m.group(1), m.group(2), base))
            i += 1
            continue
        if s.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-:| ]+\|$", lines[i + 1].strip()):
            flush()
            head = _cells(s)
            body = []
            j = i + 2
            while j < len(lines) and lines[j].strip().startswith("|"):
                body.append(_cells(lines[j]))
                j += 1
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head)
                       + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
                       + "</tbody></table>")
            i = j
            continue
        if re.match(r"^([-*]|\d+\.)\s+", s):
            flush()
            ordered = bool(re.match(r"^\d+\.", s))
            tag = "ol" if ordered else "ul"
            items: list[str] = []
            j = i
            while j < len(lines) and lines[j].strip():
                t = lines[j].strip()
                if re.match(r"^([-*]|\d+\.)\s+", t):
                    items.append(re.sub(r"^([-*]|\d+\.)\s+", "", t))
                else:  # continuation line of the previous item
                    items[-1] += " " + t
                j += 1
            out.append(f"<{tag}>" + "".join(f"<li>{_inline(x)}</li>" for x in items) + f"</{tag}>")
            i = j
            continue
        para.append(s)
        i += 1
    flush()
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(out) + "\n</body></html>\n")
