"""The dashboard page as a pure function of the reports: HTML with charts drawn as inline SVG.

No script and no network: the page renders the same in any browser, in a screenshot, offline.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import Decimal
from html import escape
from typing import Any

from services.reporting.attribution import MODELS, UNATTRIBUTED

MODEL_COLOURS = dict(
    zip(MODELS, ("#2563eb", "#0891b2", "#16a34a", "#ca8a04", "#ea580c", "#db2777", "#7c3aed"), strict=True)
)
NONE = "\u2013"  # an en dash for "no value"
MODEL_NAMES = {
    "first_touch": "First touch",
    "last_touch": "Last touch",
    "linear": "Linear",
    "u_shaped": "U-shaped",
    "w_shaped": "W-shaped",
    "time_decay": "Time decay",
    "markov": "Markov (data-driven)",
}
STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f8fafc;color:#0f172a}
header{background:#0f172a;color:#fff;padding:12px 24px;display:flex;gap:24px;align-items:center;flex-wrap:wrap}
header h1{font-size:18px;margin:0}
header form{display:flex;gap:8px;align-items:center;flex-wrap:wrap}
header input,header select,header button{font:inherit;padding:2px 6px}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px;padding:16px 24px;
max-width:1600px;margin:auto}
section{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:12px 16px;overflow:auto}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:3px 6px;border-bottom:1px solid #f1f5f9;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{color:#475569;font-weight:600}
.kpis{display:flex;gap:16px;flex-wrap:wrap}
.kpi{min-width:150px}.kpi b{display:block;font-size:22px}
.muted{color:#64748b}
.legend span{display:inline-block;margin-right:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
"""


def money(value: Any) -> str:
    return f"{Decimal(str(value)):,.0f}" if value is not None else NONE


def percent(value: float | None) -> str:
    return f"{value * 100:.0f}%" if value is not None else NONE


def bar_chart(rows: Sequence[tuple[str, float]], *, colour: str = "#2563eb", label_width: int = 150) -> str:
    """Horizontal bars with their values, scaled to the largest."""
    width, height = 640, 24 * len(rows) + 8
    largest = max((v for _, v in rows), default=0) or 1
    bars = []
    for i, (label, value) in enumerate(rows):
        y = 4 + 24 * i
        length = (width - label_width - 80) * value / largest
        bars.append(
            f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{length:.1f}" height="16" rx="2" fill="{colour}"/>'
            f'<text x="{label_width + length + 6:.1f}" y="{y + 15}">{value:,.0f}</text>'
        )
    return (
        f'<svg role="img" viewBox="0 0 {width} {height}" width="100%" font-size="12" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(bars)}</svg>'
    )


def grouped_bars(groups: Sequence[tuple[str, Mapping[str, float]]], *, label_width: int = 150) -> str:
    """One group per campaign, one bar per model: the models side by side."""
    bar, gap = 9, 10
    group_height = bar * len(MODELS) + gap
    width, height = 760, group_height * len(groups) + 8
    largest = max((v for _, values in groups for v in values.values()), default=0) or 1
    parts = []
    for g, (label, values) in enumerate(groups):
        top = 4 + g * group_height
        parts.append(
            f'<text x="{label_width - 6}" y="{top + bar * len(MODELS) / 2 + 4:.0f}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        for m, model in enumerate(MODELS):
            value = values.get(model, 0.0)
            length = (width - label_width - 70) * value / largest
            y = top + m * bar
            parts.append(
                f'<rect x="{label_width}" y="{y}" width="{length:.1f}" height="{bar - 1}" '
                f'fill="{MODEL_COLOURS[model]}"><title>{MODEL_NAMES[model]}: {value:,.2f}</title></rect>'
            )
        total = max(values.values(), default=0.0)
        parts.append(f'<text x="{width - 64}" y="{top + 12}" class="muted">{money(total)}</text>')
    return (
        f'<svg role="img" viewBox="0 0 {width} {height}" width="100%" font-size="12" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def legend() -> str:
    items = "".join(f'<span><i style="background:{MODEL_COLOURS[m]}"></i>{MODEL_NAMES[m]}</span>' for m in MODELS)
    return f'<p class="legend">{items}</p>'


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    head = "".join(f"<th>{escape(title)}</th>" for _, title in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell(row.get(key)))}</td>" for key, _ in columns) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return NONE
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    return str(value)


def attribution_by_campaign(rows: Sequence[Mapping[str, Any]], top: int = 10) -> list[tuple[str, dict[str, float]]]:
    totals: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(MODELS, 0.0))
    for row in rows:
        for m in MODELS:
            totals[row["campaign"]][m] += float(row[f"{m}_revenue"])
    ranked = sorted(totals.items(), key=lambda kv: (kv[0] == UNATTRIBUTED, -max(kv[1].values())))
    return ranked[:top]


def markov_range(rows: Sequence[Mapping[str, Any]], top: int = 10) -> str:
    """The data-driven model's shares with their bootstrap range: a wide range says the data is thin."""
    ranked = sorted(rows, key=lambda r: -r["share"])[:top]
    cells = "".join(
        f"<tr><td>{escape(str(r['campaign']))}</td><td>{percent(r['share'])}</td>"
        f"<td>{percent(r['share_low'])} {NONE} {percent(r['share_high'])}</td></tr>"
        for r in ranked
    )
    head = "<tr><th>Campaign</th><th>Markov share</th><th>90% range</th></tr>"
    return f"<table><thead>{head}</thead><tbody>{cells}</tbody></table>" if ranked else ""


def scorecard_kpis(marketing: Mapping[str, Any]) -> str:
    rows = marketing["rows"]
    if not rows:
        return '<p class="muted">No MQLs, pipeline or revenue in this range yet.</p>'
    latest = rows[-1]
    kpis = [
        ("MQLs", f"{latest['mqls']:,}", latest["mqls_target"], latest["mqls_attainment"]),
        ("SQLs", f"{latest['sqls']:,}", latest["sqls_target"], latest["sqls_attainment"]),
        ("Pipeline", money(latest["pipeline"]), latest["pipeline_target"], latest["pipeline_attainment"]),
        ("Revenue", money(latest["revenue"]), latest["revenue_target"], latest["revenue_attainment"]),
        ("MQL → SQL", percent(latest["mql_to_sql_rate"]), None, None),
    ]
    cells = "".join(
        f'<div class="kpi">{escape(name)}<b>{value}</b><span class="muted">'
        f"{'target ' + money(target) + ' · ' + percent(done) if target is not None else '&nbsp;'}</span></div>"
        for name, value, target, done in kpis
    )
    return f'<p class="muted">Period {escape(str(latest["period"]))}</p><div class="kpis">{cells}</div>'


def render(
    *,
    query: Mapping[str, str],
    attribution: Mapping[str, Any],
    funnel: Sequence[Mapping[str, Any]],
    roi: Sequence[Mapping[str, Any]],
    marketing: Mapping[str, Any],
    sales: Sequence[Mapping[str, Any]],
) -> str:
    since, until = escape(query.get("since", "")), escape(query.get("until", ""))
    funnel_bars = bar_chart([(r["stage"], float(r["entered"])) for r in funnel], colour="#0891b2")
    funnel_rates = html_table(
        funnel,
        [("stage", "Stage"), ("entered", "Entered"), ("advanced", "Moved on"), ("conversion_rate", "Rate"),
         ("median_days_in_stage", "Median days")],
    )  # fmt: skip
    reasons = [(r["reason"], float(r["rejections"])) for r in marketing["rejection_reasons"]]
    rejections = bar_chart(reasons, colour="#ea580c") if reasons else '<p class="muted">No rejections.</p>'
    roi_table = html_table(
        roi,
        [("campaign", "Campaign"), ("name", "Name"), ("cost", "Cost"), ("leads", "Leads"),
         ("cost_per_lead", "Cost / lead"), ("mqls", "MQLs"), ("cost_per_mql", "Cost / MQL"),
         ("pipeline", "Pipeline"), ("attributed_revenue", "Revenue (linear)"), ("roi", "ROI")],
    )  # fmt: skip
    sales_table = html_table(
        sales,
        [("rep_id", "Rep"), ("team_id", "Team"), ("assigned", "Assigned"), ("acceptance_rate", "Accepted"),
         ("median_minutes_to_accept", "Min. to accept"), ("median_minutes_to_first_contact", "Min. to contact"),
         ("sla_compliance", "SLA kept")],
    )  # fmt: skip
    summary = attribution["summary"]
    revenue = ", ".join(f"{money(v)} {c}" for c, v in summary["revenue"].items()) or "0"
    campaigns = grouped_bars(attribution_by_campaign(attribution["rows"]))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Leadflow reporting</title><style>{STYLE}</style></head>
<body><header><h1>Leadflow reporting</h1>
<form method="get" action="/dashboard"><label>From <input type="date" name="since" value="{since}"></label>
<label>To <input type="date" name="until" value="{until}"></label><button>Show</button></form></header>
<main>
<section class="wide"><h2>Marketing scorecard</h2>{scorecard_kpis(marketing)}</section>
<section><h2>Funnel</h2>{funnel_bars}{funnel_rates}</section>
<section><h2>Attributed revenue by model</h2>
<p class="muted">{summary["won_deals"]} won deals, {revenue} revenue; {summary["null_paths"]} journeys without a
conversion feed the Markov model.</p>{legend()}{campaigns}{markov_range(attribution["markov"])}</section>
<section class="wide"><h2>ROI by campaign</h2>{roi_table}</section>
<section class="wide"><h2>Sales scorecard</h2>{sales_table}</section>
<section><h2>Why sales rejected leads</h2>{rejections}</section>
</main></body></html>"""
