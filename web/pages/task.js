// /ui/tasks/<id>?level= — one task: status and why it waits, its parameters and result, the live
// log (followed over SSE, resumed after a dropped connection), progress, and per kind: the
// learning curve (training), the confusion matrix (evaluation), class counts and a predictions
// table with thumbnails (inference, pages/predictions.js).
import { ApiError, api, follow } from '../api.js';
import { curveGroups, heatMap, lineChart } from '../chart.js';
import { duration, every, h, progressBar, replace, statusBadge, when } from '../dom.js';
import { navigate } from '../nav.js';
import { predictionsView } from './predictions.js';

const LEVELS = ['DEBUG', 'INFO', 'WARNING', 'ERROR'];
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

export function taskPage(main, url, id) {
  document.title = `Task ${id.slice(0, 8)} · RFUAV`;
  const level = LEVELS.includes(url.searchParams.get('level')) ? url.searchParams.get('level') : 'DEBUG';
  const head = h('div', { id: 'task-head' });
  const actions = h('div', { class: 'actions' });
  const details = h('dl', { class: 'kv', id: 'task-details' });
  const curve = h('div', { class: 'chart', id: 'curve' });
  const resultBox = h('div', { id: 'task-result' });
  const params = h('pre', { class: 'json', id: 'task-params' });
  const log = h('div', { class: 'log', id: 'log', tabindex: 0, role: 'log', 'aria-live': 'polite' });
  const connection = h('span', { class: 'muted', id: 'log-state' }, 'connecting…');
  const levelSelect = h(
    'select',
    { id: 'log-level' },
    LEVELS.map((l) =>
      h('option', { value: l, selected: l === level }, l === 'DEBUG' ? 'all' : `${l} and above`),
    ),
  );
  const shown = (lv) => LEVELS.indexOf(lv) >= LEVELS.indexOf(levelSelect.value);
  levelSelect.addEventListener('change', () => {
    const next = new URL(location.href);
    if (levelSelect.value === 'DEBUG') next.searchParams.delete('level');
    else next.searchParams.set('level', levelSelect.value);
    history.replaceState(null, '', next.pathname + next.search);
    for (const line of log.children) line.hidden = !shown(line.dataset.level);
  });
  replace(
    main,
    head,
    actions,
    h('div', { class: 'grid2' }, h('section', {}, h('h2', {}, 'Details'), details), h('section', {}, curve)),
    resultBox,
    h(
      'section',
      {},
      h(
        'div',
        { class: 'log-head' },
        h('h2', {}, 'Log'),
        h('label', { for: 'log-level' }, 'level', levelSelect),
        connection,
      ),
      log,
    ),
    h('h2', {}, 'Parameters'),
    params,
  );

  let task = null;
  let curveDue = null;
  let predictions = null;
  const actionState = { error: '' };
  const objectUrls = [];
  const drawCurve = async () => {
    const m = await api(`/api/v2/training/${encodeURIComponent(id)}/metrics`);
    replace(curve, learningCurves(m.epochs));
  };
  const refresh = async () => {
    try {
      task = await api(`/api/v2/tasks/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        replace(head, h('h1', {}, 'No such task'), h('p', {}, h('a', { href: '/ui/tasks' }, 'All tasks')));
        return 'stop';
      }
      throw err;
    }
    drawHead(head, task);
    drawActions(actions, task, refresh, actionState);
    drawDetails(details, task);
    params.textContent = JSON.stringify(task.parameters ?? {}, null, 2);
    drawResult(resultBox, task);
    // An inference's predictions are read once, when it has ended, and kept across redraws.
    if (
      !predictions &&
      task.status === 'completed' &&
      task.result?.predictions_json &&
      task.result.output_path
    )
      predictions = predictionsView(task, objectUrls);
    if (predictions) resultBox.append(predictions);
    if (task.task_type === 'training' && !curveDue) curveDue = drawCurve().finally(() => (curveDue = null));
    // An ended task changes no more: the 2 s refresh (queue position, pending reason) stops.
    return TERMINAL.has(task.status) ? 'stop' : undefined;
  };
  const stopRefresh = every(2000, refresh);

  // The log: appended as it comes; kept scrolled to the end only while the reader is there.
  const stopLog = follow(`/api/v2/tasks/${encodeURIComponent(id)}/logs`, {
    onState: (state) =>
      (connection.textContent = { live: 'live', reconnecting: 'reconnecting…', ended: 'ended' }[state]),
    onEvent: (ev) => {
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
      const d = ev.data ?? {};
      if (ev.event === 'progress') {
        if (task) drawHead(head, { ...task, progress: d.progress, message: d.message });
        return undefined;
      }
      if (d.status && !d.level) {
        // The final status: the stream ends after it.
        log.append(
          h(
            'div',
            { class: 'final', 'data-level': 'INFO' },
            `— ${d.status}${d.message ? `: ${d.message}` : ''}`,
          ),
        );
        void refresh();
        if (atBottom) log.scrollTop = log.scrollHeight;
        return 'end';
      }
      const lv = LEVELS.includes(d.level) ? d.level : 'INFO';
      const line = h(
        'div',
        { class: lv, 'data-level': lv, 'data-seq': ev.id },
        h('time', { datetime: d.timestamp }, d.timestamp ? new Date(d.timestamp).toLocaleTimeString() : ''),
        d.message,
      );
      line.hidden = !shown(lv);
      log.append(line);
      if (atBottom) log.scrollTop = log.scrollHeight;
      // An epoch ended: its metrics arrive with the line; redraw the curve.
      if (d.metrics && task?.task_type === 'training' && !curveDue)
        curveDue = drawCurve().finally(() => (curveDue = null));
      return undefined;
    },
  });
  return () => {
    stopRefresh();
    stopLog();
    for (const u of objectUrls) URL.revokeObjectURL(u);
  };
}

function drawHead(el, t) {
  const waiting = t.status === 'queued' || t.status === 'pending';
  replace(
    el,
    h('h1', {}, `${t.task_type} `, h('span', { class: 'mono' }, t.task_id), ' ', statusBadge(t.status)),
    h(
      'div',
      { class: 'actions' },
      progressBar(t.progress),
      h('span', { id: 'task-progress' }, `${t.progress} %`),
    ),
    t.message ? h('p', { id: 'task-message' }, t.message) : '',
    waiting && t.pending_reason
      ? h(
          'p',
          { id: 'pending-reason' },
          h('strong', {}, 'Waiting: '),
          t.pending_reason,
          t.queue_position != null ? ` (position ${t.queue_position} in the queue)` : '',
        )
      : '',
    t.error ? h('p', { class: 'error', id: 'task-error' }, t.error) : '',
  );
}

/** `state.error`: the last action's refusal, kept across the redraws that follow it. */
function drawActions(el, t, refresh, state) {
  const errorLine = h('span', { class: 'error', role: 'alert', id: 'action-error' }, state.error);
  const act = (label, fn, cls) =>
    h(
      'button',
      {
        type: 'button',
        class: cls,
        onclick: async (e) => {
          e.currentTarget.disabled = true;
          try {
            await fn();
            state.error = '';
          } catch (err) {
            state.error = err.message;
          }
          errorLine.textContent = state.error;
          await refresh().catch(() => undefined);
        },
      },
      label,
    );
  const id = encodeURIComponent(t.task_id);
  replace(
    el,
    !TERMINAL.has(t.status)
      ? act('Cancel', () => api(`/api/v2/tasks/${id}/cancel`, { method: 'POST' }), 'danger')
      : '',
    TERMINAL.has(t.status)
      ? act(
          'Delete',
          async () => {
            if (!confirm(`Delete task ${t.task_id} and its log?`)) return;
            await api(`/api/v2/tasks/${id}`, { method: 'DELETE' });
            navigate('/ui/tasks');
          },
          'danger',
        )
      : '',
    h(
      'a',
      { href: `/ui/submit/${encodeURIComponent(t.task_type)}?from=${id}`, id: 'run-again' },
      'Run again…',
    ),
    t.task_type === 'training' ? h('a', { href: `/api/v2/training/${id}/metrics` }, 'metrics (JSON)') : '',
    errorLine,
  );
}

function drawDetails(el, t) {
  const rows = [
    ['owner', t.owner ?? ''],
    ['device', t.device ?? (t.device_request ? `${t.device_request} (asked)` : '')],
    ['node', t.node ?? ''],
    ['pinned to', t.pinned_node ?? ''],
    ['attempts', t.attempts],
    [
      'priority',
      t.effective_priority != null && t.effective_priority !== t.priority
        ? `${t.priority} (now ${t.effective_priority})`
        : t.priority,
    ],
    ['epoch', t.total_epochs ? `${t.current_epoch ?? 0} / ${t.total_epochs}` : ''],
    ['created', when(t.created_at)],
    ['started', when(t.started_at)],
    ['finished', when(t.finished_at)],
    ['ran for', t.started_at ? duration(t.started_at, t.finished_at) : ''],
    ['input', t.input_path ?? ''],
    ['output', t.output_path ?? ''],
    ['name', t.name ?? ''],
    ['description', t.description ?? ''],
  ].filter(([, v]) => v !== '' && v !== null && v !== undefined);
  replace(
    el,
    rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]),
  );
}

/** One chart per scale (loss, accuracy, scores); every epoch reported. */
function learningCurves(epochs) {
  const keys = [...new Set(epochs.flatMap((e) => Object.keys(e)))].filter(
    (k) => k !== 'epoch' && epochs.some((e) => typeof e[k] === 'number'),
  );
  const series = (ks) =>
    ks.map((k) => ({
      name: k,
      points: epochs.filter((e) => typeof e[k] === 'number').map((e) => [e.epoch, e[k]]),
    }));
  const groups = curveGroups(keys);
  return h(
    'div',
    {},
    h('h2', {}, 'Learning curve'),
    epochs.length === 0 ? h('p', { class: 'muted' }, 'No epoch has finished yet.') : '',
    (groups.length ? groups : [{ title: 'loss', keys: [] }]).map((g) =>
      lineChart(series(g.keys), { title: g.title }),
    ),
  );
}

function drawResult(el, t) {
  const r = t.result;
  if (!r || typeof r !== 'object') return replace(el);
  const parts = [h('h2', {}, 'Result')];
  if (r.confusion_matrix?.labels) parts.push(...evaluationView(r));
  if (r.counts && typeof r.counts === 'object') {
    const entries = Object.entries(r.counts).sort((a, b) => b[1] - a[1]);
    parts.push(
      h('h3', {}, 'Predictions per class'),
      h(
        'table',
        { id: 'class-counts' },
        h('thead', {}, h('tr', {}, h('th', {}, 'class'), h('th', { class: 'num' }, 'count'))),
        h(
          'tbody',
          {},
          entries.map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', { class: 'num' }, v))),
        ),
      ),
    );
  }
  const plain = Object.fromEntries(
    Object.entries(r).filter(([k]) => !['confusion_matrix', 'accuracy_vs_snr', 'counts'].includes(k)),
  );
  parts.push(h('pre', { class: 'json', id: 'result-json' }, JSON.stringify(plain, null, 2)));
  replace(el, parts);
}

function evaluationView(r) {
  const { labels, matrix } = r.confusion_matrix;
  const colSum = labels.map((_, j) => matrix.reduce((a, row) => a + (row[j] ?? 0), 0));
  const perClass = labels.map((l, i) => {
    const tp = matrix[i]?.[i] ?? 0;
    const rowSum = (matrix[i] ?? []).reduce((a, b) => a + b, 0);
    return {
      l,
      precision: colSum[i] ? tp / colSum[i] : null,
      recall: rowSum ? tp / rowSum : null,
      n: rowSum,
    };
  });
  const pct = (v) => (v == null ? '—' : `${(v * 100).toFixed(1)} %`);
  const out = [
    h('div', { class: 'chart', id: 'confusion' }, heatMap(labels, matrix)),
    h(
      'table',
      { id: 'per-class' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['class', 'precision', 'recall', 'images'].map((x) => h('th', {}, x)),
        ),
      ),
      h(
        'tbody',
        {},
        perClass.map((c) =>
          h(
            'tr',
            {},
            h('td', {}, c.l),
            h('td', { class: 'num' }, pct(c.precision)),
            h('td', { class: 'num' }, pct(c.recall)),
            h('td', { class: 'num' }, c.n),
          ),
        ),
      ),
    ),
  ];
  if (Array.isArray(r.accuracy_vs_snr) && r.accuracy_vs_snr.length) {
    const pts = r.accuracy_vs_snr.filter((s) => s.snr_db != null).map((s) => [s.snr_db, s.accuracy]);
    out.push(
      h(
        'div',
        { class: 'chart', id: 'snr' },
        lineChart([{ name: 'accuracy', points: pts }], { title: 'accuracy vs SNR', xLabel: 'SNR (dB)' }),
      ),
    );
  }
  return out;
}
