/** Server-rendered overview for browsers at `/`: counts, slots and where to go next. */
export interface OverviewData {
  version: string;
  counts: { kind: string; status: string; n: number }[];
  usage: Record<string, Record<string, number>>;
  limits: Record<string, Record<string, number>>;
  queueLength: number;
  gpuCount: number;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function renderOverviewPage(d: OverviewData): string {
  const statuses = ['pending', 'queued', 'running', 'completed', 'failed', 'cancelled'];
  const kinds = [...new Set(d.counts.map((c) => c.kind))].sort();
  const n = (kind: string, status: string) =>
    d.counts.find((c) => c.kind === kind && c.status === status)?.n ?? 0;
  const taskRows = kinds
    .map((k) => `<tr><th>${esc(k)}</th>${statuses.map((s) => `<td>${n(k, s)}</td>`).join('')}</tr>`)
    .join('');
  const slotRows = Object.entries(d.limits)
    .map(
      ([dev, lim]) =>
        `<tr><th>${esc(dev)}</th>${['training', 'inference', 'preprocessing']
          .map((c) => `<td>${d.usage[dev]?.[c] ?? 0} / ${lim[c] ?? 0}</td>`)
          .join('')}</tr>`,
    )
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>RFUAV Model Service</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #ccc;padding:.3rem .7rem;text-align:right}
th{text-align:left;background:#f4f4f4}code{background:#f4f4f4;padding:.1rem .3rem}
</style></head><body>
<h1>RFUAV Model Service <small>${esc(d.version)}</small></h1>
<p>${d.queueLength} task(s) waiting · ${d.gpuCount} GPU(s) on this node ·
<a href="/docs">API documentation</a> · <a href="/metrics">metrics</a> · <a href="/api/v2/tasks">tasks (JSON)</a></p>
<h2>Tasks</h2>
${kinds.length ? `<table><tr><th>kind</th>${statuses.map((s) => `<th>${s}</th>`).join('')}</tr>${taskRows}</table>` : '<p>No tasks yet.</p>'}
<h2>Slots in use / limit</h2>
<table><tr><th>device</th><th>training</th><th>inference</th><th>preprocessing</th></tr>${slotRows}</table>
<p>Follow a task's log: <code>rfuav logs -f &lt;task_id&gt;</code> or <code>GET /api/v2/tasks/&lt;task_id&gt;/logs</code>.</p>
</body></html>`;
}
