// /ui/compare?ids=a,b,… — up to 10 training runs: their learning curves overlaid (one chart per
// metric, one line per run), the parameters that differ between them, and last/min/max per metric.
import { ApiError, api } from '../api.js';
import { curveGroups, lineChart } from '../chart.js';
import { every, h, replace, shortId, statusBadge } from '../dom.js';

const MAX_RUNS = 10;

export function comparePage(main, url) {
  document.title = 'Compare runs · RFUAV';
  const ids = [
    ...new Set(
      (url.searchParams.get('ids') ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ];
  if (ids.length === 0) {
    replace(
      main,
      h('h1', {}, 'Compare runs'),
      h(
        'p',
        {},
        'Choose training runs in ',
        h('a', { href: '/ui/tasks?kind=training' }, 'the task list'),
        ' to compare them.',
      ),
    );
    return undefined;
  }
  const runsBox = h('div', { class: 'table-wrap', id: 'runs' });
  const paramsBox = h('div', { class: 'table-wrap', id: 'param-diff' });
  const statsBox = h('div', { class: 'table-wrap', id: 'metric-stats' });
  const charts = h('div', { class: 'grid2 chart', id: 'compare-charts' });
  const note = h(
    'p',
    { class: 'muted' },
    ids.length > MAX_RUNS ? `Only the first ${MAX_RUNS} runs are shown.` : '',
  );
  replace(
    main,
    h('h1', {}, 'Compare runs'),
    note,
    runsBox,
    charts,
    h('h2', {}, 'Parameters that differ'),
    paramsBox,
    h('h2', {}, 'Per metric: last, min, max'),
    statsBox,
  );
  const chosen = ids.slice(0, MAX_RUNS);
  return every(5000, async () => {
    const runs = await Promise.all(
      chosen.map(async (id) => {
        try {
          const [task, m] = await Promise.all([
            api(`/api/v2/tasks/${encodeURIComponent(id)}`),
            api(`/api/v2/training/${encodeURIComponent(id)}/metrics`),
          ]);
          return { id, task, epochs: m.epochs };
        } catch (err) {
          if (err instanceof ApiError && (err.status === 404 || err.status === 422))
            return { id, missing: err.message };
          throw err;
        }
      }),
    );
    const found = runs.filter((r) => !r.missing);
    replace(runsBox, runTable(runs));
    replace(charts, metricCharts(found));
    replace(paramsBox, paramDiff(found));
    replace(statsBox, metricStats(found));
    return found.every((r) => ['completed', 'failed', 'cancelled'].includes(r.task.status))
      ? 'stop'
      : undefined;
  });
}

const label = (r) => r.task?.name || shortId(r.id);

function runTable(runs) {
  return h(
    'table',
    {},
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['run', 'status', 'model', 'epochs'].map((x) => h('th', {}, x)),
      ),
    ),
    h(
      'tbody',
      {},
      runs.map((r) =>
        r.missing
          ? h('tr', {}, h('td', { class: 'mono' }, r.id), h('td', { class: 'error', colspan: 3 }, r.missing))
          : h(
              'tr',
              {},
              h('td', {}, h('a', { href: `/ui/tasks/${encodeURIComponent(r.id)}` }, label(r))),
              h('td', {}, statusBadge(r.task.status)),
              h('td', {}, String(r.task.parameters?.model ?? '')),
              h('td', { class: 'num' }, `${r.epochs.length} / ${r.task.total_epochs ?? '?'}`),
            ),
      ),
    ),
  );
}

function metricNames(runs) {
  return [...new Set(runs.flatMap((r) => r.epochs.flatMap((e) => Object.keys(e))))].filter(
    (k) => k !== 'epoch' && runs.some((r) => r.epochs.some((e) => typeof e[k] === 'number')),
  );
}

/** A chart per loss and accuracy and for macro F1 (every metric is in the table below). */
function metricCharts(runs) {
  const shown = curveGroups(metricNames(runs)).flatMap((g) =>
    g.title === 'scores (0–1)' ? g.keys.filter((k) => k === 'macro_f1') : g.keys,
  );
  return shown.map((k) =>
    h(
      'div',
      { 'data-metric': k },
      lineChart(
        runs.map((r) => ({
          name: label(r),
          points: r.epochs.filter((e) => typeof e[k] === 'number').map((e) => [e.epoch, e[k]]),
        })),
        { title: k },
      ),
    ),
  );
}

/** Only the parameters whose values are not the same in every run. */
function differingParams(runs) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.task.parameters ?? {})))].sort();
  const show = (v) => (v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return keys
    .map((k) => ({ k, values: runs.map((r) => show(r.task.parameters?.[k])) }))
    .filter((p) => new Set(p.values).size > 1);
}

function paramDiff(runs) {
  const diff = differingParams(runs);
  if (runs.length < 2) return h('p', { class: 'muted' }, 'Choose at least two runs.');
  if (diff.length === 0) return h('p', { class: 'muted' }, 'The runs have the same parameters.');
  return h(
    'table',
    {},
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, 'parameter'),
        runs.map((r) => h('th', {}, label(r))),
      ),
    ),
    h(
      'tbody',
      {},
      diff.map((p) =>
        h(
          'tr',
          { 'data-param': p.k },
          h('th', {}, p.k),
          p.values.map((v) => h('td', {}, v)),
        ),
      ),
    ),
  );
}

function metricStats(runs) {
  const names = metricNames(runs);
  const fmt = (v) => (v === undefined ? '—' : Math.abs(v) >= 100 ? v.toFixed(1) : v.toFixed(4));
  return h(
    'table',
    {},
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, 'metric'),
        h('th', {}, 'run'),
        ['last', 'min', 'max'].map((x) => h('th', { class: 'num' }, x)),
      ),
    ),
    h(
      'tbody',
      {},
      names.flatMap((k) =>
        runs.map((r) => {
          const vs = r.epochs.map((e) => e[k]).filter((v) => typeof v === 'number');
          return h(
            'tr',
            {},
            h('th', {}, k),
            h('td', {}, label(r)),
            h('td', { class: 'num' }, fmt(vs.at(-1))),
            h('td', { class: 'num' }, fmt(vs.length ? Math.min(...vs) : undefined)),
            h('td', { class: 'num' }, fmt(vs.length ? Math.max(...vs) : undefined)),
          );
        }),
      ),
    ),
  );
}
