"""The evaluation as a table for the terminal and as one self-contained HTML page
(``sam2voice eval run --report``): totals, success per session, each scorer's
distribution over conversations, and the worst turns. Plots are PNGs inlined as data URIs,
so the page opens anywhere, offline, with nothing beside it."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from rich.table import Table

from app.eval.run import EvalRun
from memories.errors import InvalidInput

#: The scorer figure drawn per conversation, and its label.
DISTRIBUTIONS = {"ExpectedBehaviour": ("share", "expected behaviour met"),
                 "ConversationSafety": ("share", "safety handled right"),
                 "ConversationStyle": ("mean_quality", "reply quality"),
                 "ConversationEffectiveness": ("effectiveness", "interventions that helped"),
                 "ConversationReflections": ("share", "insights that pass"),
                 "ConversationRetrieval": ("relevant_share", "examples from the same moment"),
                 "ConversationJudge": ("mean_quality", "judged reply quality")}
#: Worst first: a missed crisis, a safety reply to a non-crisis, a wrong behaviour, style, insight.
_SEVERITY = {"missed a crisis": 0, "safety reply to a non-crisis": 1}
_ORDER = {"ConversationSafety": 1, "ExpectedBehaviour": 2, "ConversationStyle": 3, "ConversationJudge": 4,
          "ConversationReflections": 5}


def _pct(met: int, total: int) -> str:
    return f"{met}/{total} ({met / total:.0%})" if total else "–"


def _simulated(by_session: dict[str, dict[str, int]]) -> list[tuple[str, str]]:
    if not by_session:
        return []
    first, last = next(iter(by_session.values())), list(by_session.values())[-1]
    return [("simulated people: turns helped, first · last session",
             f"{first['helped'] / first['turns']:.0%} · {last['helped'] / last['turns']:.0%}")]


def headline(run: EvalRun) -> list[tuple[str, str]]:
    """The figures of the table, as (what, value) pairs."""
    t = run.totals
    b, s, st, e, r, q = (t["behaviour"], t["safety"], t["style"], t["effectiveness"], t["reflections"],
                         t["retrieval"])
    rows = [("conversations or people · turns", f"{len(run.rows)} · {t['turns']}"),
            ("expected behaviour met", _pct(b["met"], b["checked"]))]
    rows += [(f"  {kind}", _pct(b[f"{kind}_met"], b[f"{kind}_checked"])) for kind in ("tool", "settles", "plan", "act")
             if b[f"{kind}_checked"]]
    rows += [("safety handled right", _pct(s["correct"], s["turns"])),
             ("  crises missed · false alarms", f"{s['missed_crisis']} of {s['crises']} · {s['false_alarm']}"),
             ("replies in style", _pct(st["ok"], st["turns"])),
             ("  mean reply quality", "–" if st["mean_quality"] is None else f"{st['mean_quality']:.2f}"),
             ("interventions that helped", _pct(e["helped"], e["interventions"])),
             ("insights that pass", _pct(r["ok"], r["reflections"])),
             *([("replies the judge passes", _pct(t["judge"]["ok"], t["judge"]["judged"])
                 + (f" · {t['judge']['errors']} errors" if t["judge"]["errors"] else ""))] if t.get("judge") else []),
             ("few-shot examples from the same moment",
              "–" if q["relevant_share"] is None
              else f"{q['relevant_share']:.0%} over {q['turns_with_examples']} turns"),
             *_simulated(t.get("simulated_success_by_session") or {}),
             ("seconds", f"{run.seconds:.1f}")]
    return rows


def table(run: EvalRun) -> Table:
    """The headline figures as a rich table."""
    out = Table(title=f"{Path(run.dataset).name} · {run.model}", title_justify="left")
    out.add_column("measure")
    out.add_column("result", justify="right")
    for what, value in headline(run):
        out.add_row(what, value)
    return out


def worst(run: EvalRun, limit: int = 25) -> list[dict[str, Any]]:
    """The turns that fell short, worst first."""
    found = []
    for row in run.rows:
        for name, score in row.scores.items():
            for miss in score.get("misses") or [] if isinstance(score, dict) else []:
                found.append({"conversation": row.id, "scorer": name, **miss})
    found.sort(key=lambda m: (_SEVERITY.get(m["why"], 9), _ORDER.get(m["scorer"], 5), m["conversation"]))
    return found[:limit]


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _plots(run: EvalRun) -> list[tuple[str, str]]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # matplotlib is a dev extra
        raise InvalidInput("the report needs matplotlib (pip install -e '.[dev]')", field="report") from exc
    plots = []
    by_session = run.totals["effectiveness_by_session"]
    if by_session:
        fig, ax = plt.subplots(figsize=(5, 3), dpi=110, layout="constrained")
        sessions = sorted(by_session, key=int)
        rates = [by_session[n]["helped"] / by_session[n]["interventions"] if by_session[n]["interventions"] else 0
                 for n in sessions]
        ax.bar([int(n) for n in sessions], rates, color="#4c78a8")
        for n, rate in zip(sessions, rates, strict=True):
            ax.annotate(f"{by_session[n]['helped']}/{by_session[n]['interventions']}", (int(n), rate),
                        ha="center", va="bottom", fontsize=8)
        ax.set(xlabel="session", ylabel="interventions that helped", ylim=(0, 1.1), xticks=[int(n) for n in sessions])
        plots.append(("Success per session", _png(fig)))
        plt.close(fig)
    simulated = run.totals.get("simulated_success_by_session") or {}
    if simulated:
        fig, ax = plt.subplots(figsize=(6, 3), dpi=110, layout="constrained")
        sessions = [int(n) for n in simulated]
        ax.plot(sessions, [s["helped"] / s["turns"] for s in simulated.values()], marker="o", color="#e45756")
        ax.set(xlabel="session", ylabel="simulated turns helped", ylim=(0, 1.05))
        ax.xaxis.get_major_locator().set_params(integer=True)
        plots.append(("Simulated people: turns helped per session (memory on)", _png(fig)))
        plt.close(fig)
    drawn = [(label, [v for r in run.rows if isinstance(v := (r.scores.get(name) or {}).get(key), int | float)])
             for name, (key, label) in DISTRIBUTIONS.items()]
    drawn = [(label, values) for label, values in drawn if values]
    if drawn:
        fig, axes = plt.subplots(1, len(drawn), figsize=(2.3 * len(drawn), 2.6), dpi=110, layout="constrained",
                                 squeeze=False)
        for ax, (label, values) in zip(axes[0], drawn, strict=True):
            ax.hist(values, bins=[i / 10 for i in range(11)], color="#72b7b2")
            ax.set_title(label, fontsize=8)
            ax.set_xlim(0, 1)
            ax.tick_params(labelsize=7)
        axes[0][0].set_ylabel("conversations", fontsize=8)
        plots.append(("Scores per conversation or person", _png(fig)))
        plt.close(fig)
    return plots


_STYLE = """body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.n{text-align:right;white-space:nowrap}
.why{color:#a33}td.sub{padding-left:1.6rem;color:#555}img{max-width:100%}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}small{color:#666}"""


def write_report(run: EvalRun, path: Path) -> None:
    """Write the evaluation as one self-contained HTML page."""
    esc = html.escape
    rows = "".join(f"<tr><td{' class=sub' if what.startswith(' ') else ''}>{esc(what.strip())}</td>"
                   f"<td class=n>{esc(value)}</td></tr>" for what, value in headline(run))
    plots = "".join(f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='{uri}'>" for title, uri in _plots(run))
    misses = worst(run)
    examples = "".join(
        f"<tr><td>{esc(m['conversation'])}<br><small>{esc(m['scorer'])} · session {m.get('session')}"
        f"{'' if m.get('index') is None else ', turn ' + str(m['index'])}</small></td><td>{esc(str(m.get('say')))}</td>"
        f"<td>{esc(str(m.get('reply') or ''))}</td><td class=why>{esc(m['why'])}</td></tr>" for m in misses)
    failed = "".join(f"<li>{esc(f)}</li>" for f in run.failed)
    page = (f"<!doctype html><html lang=en><meta charset=utf-8><title>sam2voice evaluation</title>"
            f"<style>{_STYLE}</style><h1>sam2voice evaluation: {esc(Path(run.dataset).name)}</h1>"
            f"<p><small>chat model {esc(run.model)}{' · judged by ' + esc(run.judge) if run.judge else ''} · "
            f"{len(run.rows)} conversations · {run.seconds:.1f} s</small></p>"
            f"{'<h2>Failed to run</h2><ul>' + failed + '</ul>' if failed else ''}"
            f"<table><tr><th>measure</th><th>result</th></tr>{rows}</table>{plots}"
            f"<h2>Worst turns ({len(misses)})</h2>"
            + (f"<table><tr><th>where</th><th>they said</th><th>companion said</th><th>what was wrong</th></tr>"
               f"{examples}</table>" if misses else "<p>Every turn met what it expected.</p>")
            + "</html>")
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write the report to {path}: {exc}", field="report") from None
