"""``errors.html`` next to a report: TIDE's per-class table (error counts and dAP per kind) and
every error of every sample, filterable by kind, each row naming its sample and its map.

Pure: a summary (:func:`mmattnvis.apis.errors.summarize_labels`) and the records' error labels
in, one self-contained HTML file out (written atomically).
"""
import html
import os
import os.path as osp
from typing import Any, Dict, List, Sequence

KINDS = ('classification', 'localization', 'both', 'duplicate', 'background', 'missed')

_SCRIPT = """<script>
function filterKind(k){document.querySelectorAll('#errors tbody tr').forEach(function(r){
r.style.display=(k==='all'||r.dataset.kind===k)?'':'none';});}
</script>"""


def error_rows(stem: str, errors: Dict[str, Any], classes: Sequence[str]) -> List[dict]:
    """One row per error of a record's ``info['errors']``."""
    def name(c: int) -> str:
        return classes[c] if 0 <= c < len(classes) else str(c)
    rows = []
    for d in errors.get('detections', []):
        if d['kind'] not in ('tp', 'ignored'):
            rows.append({'sample': stem, 'kind': d['kind'], 'class': name(d.get('label', -1)),
                         'what': f"detection {d.get('rank')} score {d.get('score', 0):.2f}",
                         'map': d.get('map', '')})
    for g in errors.get('ground_truth', []):
        if g['status'] == 'missed':
            rows.append({'sample': stem, 'kind': 'missed', 'class': name(g['label']),
                         'what': f"object {g['index']}: {g.get('reason', 'reason unknown')}",
                         'map': g.get('map', '')})
    return rows


def write_errors_page(out_dir: str, summary: Dict[str, Any], rows: Sequence[dict]) -> str:
    """Write ``<out_dir>/errors.html``; returns its path."""
    e = html.escape
    head = ''.join(f'<th>{e(k)}</th>' for k in KINDS)
    table = [f'<tr><th>class</th><th>AP50</th>{head}</tr>']
    for c in summary['per_class']:
        cells = ''.join(f"<td>{c['counts'][k]} / {c['dap'][k]:.2f}</td>" for k in KINDS)
        table.append(f"<tr><td>{e(str(c['name']))}</td><td>{c['ap']:.2f}</td>{cells}</tr>")
    total = ''.join(f"<td>{summary['counts'][k]} / {summary['dap'][k]:.2f}</td>" for k in KINDS)
    table.append(f"<tr><th>all</th><td>{summary['ap']:.2f}</td>{total}</tr>")
    options = ''.join(f'<option value="{k}">{k}</option>' for k in ('all', ) + KINDS)
    body = [f'<tr data-kind="{e(r["kind"])}"><td><a href="index.html#{e(r["sample"])}">'
            f'{e(r["sample"])}</a></td><td>{e(r["kind"])}</td><td>{e(r["class"])}</td>'
            f'<td>{e(r["what"])}</td><td>{e(r["map"])}</td></tr>' for r in rows]
    page = (f'<!doctype html><html><head><meta charset="utf-8"><title>errors</title>{_SCRIPT}'
            '</head><body><h1>Errors (TIDE: foreground IoU 0.5, background IoU 0.1)</h1>'
            '<p>Per class: error count / dAP (AP points gained when that kind is fixed).</p>'
            f'<table id="tide">{"".join(table)}</table><h2>Every error</h2>'
            f'<label>kind <select id="kind" onchange="filterKind(this.value)">{options}'
            '</select></label><table id="errors"><thead><tr><th>sample</th><th>kind</th>'
            '<th>class</th><th>what</th><th>map</th></tr></thead><tbody>'
            f'{"".join(body)}</tbody></table></body></html>')
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, 'errors.html')
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        f.write(page)
    os.replace(tmp, path)
    return path


__all__ = ['error_rows', 'write_errors_page']
