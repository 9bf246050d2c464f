"""One self-contained HTML file: text, headline figures, tables and Altair charts with vega, vega-lite and
vega-embed inlined, so that it opens offline (a Content-Security-Policy forbids every fetch).

Everything that comes from a run (model names, prompts, generated text, errors, machine facts) is HTML-escaped where
it is written; chart specs travel as JSON in `<script type="application/json">` blocks with `<`, `>` and `&`
escaped as JSON unicode escapes, so no text can close the block or open a tag."""

from __future__ import annotations

import functools
import html
import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import altair as alt
import pandas as pd

from energyprof import __version__
from energyprof.errors import EnergyprofError

log = logging.getLogger(__name__)

TABLE_ROWS = 500
"""Rows a report table shows at most (the CSV exports hold every row)."""
CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
       "img-src data: blob:; font-src data:")
"""The report fetches nothing: inline scripts and styles only (vega compiles its expressions, hence eval)."""
STEP_CHART_WIDTH = 460
"""Width (px) of a chart whose height is a step per row (bars per layer, per component)."""
EMBED_OPTIONS = {"renderer": "svg", "actions": False}
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;padding:24px;
color:#1f2328;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
.meta{color:#57606a}.figures{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.figure{border:1px solid #d0d7de;border-radius:8px;padding:8px 12px;min-width:150px}
.figure .label{font-size:.8em;color:#57606a}.figure .value{font-size:1.35em;font-weight:600}
.tag{display:inline-block;font-size:.72em;border-radius:4px;padding:0 5px;margin-left:4px;color:#fff}
.tag.measured{background:#2da44e}.tag.apportioned{background:#8e6bbf}.tag.estimated{background:#d1762f}
.tag.unknown{background:#8c959f}.warning{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:6px 10px;
margin:6px 0}.chart{width:100%;margin:10px 0 18px}.row{display:flex;gap:24px;flex-wrap:wrap}.row>div{flex:1 1 480px;
min-width:0}table{border-collapse:collapse;font-size:.85em;margin:8px 0}th,td{border:1px solid #d0d7de;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.caption{font-size:.85em;color:#57606a}footer{margin-top:3em;font-size:.8em;color:#57606a}
"""


class ReportError(EnergyprofError, RuntimeError):
    """The report cannot be written (its charts' JavaScript is missing); the message is one sentence."""


@dataclass(frozen=True)
class Figure:
    """A headline figure: its label, its value as text and how it was obtained (energyprof.provenance)."""

    label: str
    value: str
    provenance: str | None = None
    help: str | None = None


def esc(value: Any) -> str:
    """Any value as HTML text (None as an em dash)."""
    return "—" if value is None else html.escape(str(value), quote=True)


def script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element: no `<`, `>` or `&` character survives (unicode escapes), and a
    non-finite number is null (JSON has no NaN)."""
    try:
        text = json.dumps(value, default=_json_default, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(value), default=_json_default, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return str(value)


@functools.lru_cache(maxsize=1)
def vega_javascript() -> str:
    """vega, vega-lite and vega-embed as one script (vl-convert-python ships them; built once per process)."""
    try:
        import vl_convert
    except ImportError as exc:
        raise ReportError("The HTML report needs the vl-convert-python package for its charts' JavaScript; install "
                          "it with `pip install vl-convert-python==1.9.0.post1`.") from exc
    version = "_".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    bundle = vl_convert.javascript_bundle(vl_version=f"v{version}")
    return bundle.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


class Document:
    """An HTML report under construction: add parts in reading order, then render()."""

    def __init__(self, title: str, subtitle: str = "", *, _counter: list[int] | None = None) -> None:
        self.title, self.subtitle = title, subtitle
        self.parts: list[str] = []
        self._counter = _counter if _counter is not None else [0]
        """Charts numbered so far, shared with the side-by-side documents made by `side()`."""

    @property
    def charts(self) -> int:
        return self._counter[0]

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{esc(text)}</h{level}>")

    def text(self, text: str, css: str = "") -> None:
        self.parts.append(f'<p class="{css}">{esc(text)}</p>' if css else f"<p>{esc(text)}</p>")

    def caption(self, text: str) -> None:
        self.text(text, "caption")

    def warning(self, text: str) -> None:
        self.parts.append(f'<div class="warning">{esc(text)}</div>')

    def figures(self, figures: list[Figure]) -> None:
        cards = []
        for f in figures:
            tag = f'<span class="tag {esc(f.provenance)}">{esc(f.provenance)}</span>' if f.provenance else ""
            title = f' title="{esc(f.help)}"' if f.help else ""
            cards.append(f'<div class="figure"{title}><div class="label">{esc(f.label)}{tag}</div>'
                         f'<div class="value">{esc(f.value)}</div></div>')
        self.parts.append(f'<div class="figures">{"".join(cards)}</div>')

    def table(self, frame: pd.DataFrame, caption: str | None = None, max_rows: int = TABLE_ROWS) -> None:
        """A table of every cell as escaped text (numbers right-aligned, 4 significant digits)."""
        if frame is None or frame.empty:
            self.caption(caption or "Nothing recorded.")
            return
        shown = frame.head(max_rows)
        head = "".join(f"<th>{esc(c)}</th>" for c in shown.columns)
        body = []
        for row in shown.itertuples(index=False):
            body.append("<tr>" + "".join(_cell(v) for v in row) + "</tr>")
        more = (f'<p class="caption">First {max_rows:,} of {len(frame):,} rows: the CSV export holds them all.</p>'
                if len(frame) > max_rows else "")
        title = f'<p class="caption">{esc(caption)}</p>' if caption else ""
        self.parts.append(f"{title}<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}")

    def chart(self, chart: alt.TopLevelMixin) -> None:
        """An Altair chart, drawn by vega-embed from its spec (as SVG), at the page's width where it can be."""
        spec = chart.to_dict()
        if "facet" not in spec and "width" not in spec:
            if isinstance(spec.get("height"), dict):  # a step per row: vega-lite cannot fit it to a container
                spec["width"] = STEP_CHART_WIDTH
            else:
                spec["width"] = "container"
                spec.setdefault("autosize", {"type": "fit-x", "contains": "padding"})
        self._counter[0] += 1
        ident = f"energyprof-chart-{self.charts}"
        self.parts.append(f'<div class="chart" id="{ident}" data-energyprof-chart="{ident}-spec"></div>'
                          f'<script type="application/json" id="{ident}-spec">{script_json(spec)}</script>')

    def side(self) -> Document:
        """A document to fill and then place beside others with `columns` (its charts numbered with this one's)."""
        return Document(self.title, _counter=self._counter)

    def columns(self, *sides: Document) -> None:
        """Documents made by `side()`, side by side (stacked on a narrow screen)."""
        self.parts.append('<div class="row">' + "".join(f"<div>{''.join(d.parts)}</div>" for d in sides) + "</div>")

    def html_block(self, trusted_html: str) -> None:
        """HTML this package built itself with every piece of user text escaped (e.g. energyprof.token_html)."""
        self.parts.append(trusted_html)

    def render(self) -> str:
        """The whole file: head (CSP, style, the vega scripts), the parts, the script that draws every chart."""
        generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        script = "" if not self.charts else (
            f"<script>{vega_javascript()}</script>\n<script>{_DRAW.replace('__OPTIONS__', script_json(EMBED_OPTIONS))}"
            "</script>")
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{esc(self.title)}</title><style>{STYLE}</style></head><body>"
                f"<h1>{esc(self.title)}</h1>"
                + (f'<p class="meta">{esc(self.subtitle)}</p>' if self.subtitle else "")
                + "\n".join(self.parts)
                + f"<footer>Made by energyprof {esc(__version__)} on {esc(generated)}. Figures marked measured are "
                  "read from the hardware's energy counters, apportioned ones are a time share of a measured window, "
                  "estimated ones come from a model of power.</footer>"
                + script + "</body></html>\n")


_DRAW = """
(function () {
  var options = __OPTIONS__;
  document.querySelectorAll('[data-energyprof-chart]').forEach(function (el) {
    var spec = JSON.parse(document.getElementById(el.getAttribute('data-energyprof-chart')).textContent);
    vegaEmbed(el, spec, options).catch(function (err) {
      el.textContent = 'This chart could not be drawn: ' + err;
      console.error(err);
    });
  });
})();
"""


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "<td></td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, int | float) or hasattr(value, "item") and isinstance(value.item(), int | float):
        number = value.item() if hasattr(value, "item") else value
        text = f"{number:,}" if isinstance(number, int) else f"{number:.4g}"
        return f'<td class="num">{esc(text)}</td>'
    return f"<td>{esc(value)}</td>"
