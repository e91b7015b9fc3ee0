// /ui/ — the queue, what runs, slots per device (and node), GPUs live, recent tasks.
import { api } from '../api.js';
import { every, h, progressBar, replace, shortId, statusBadge, when } from '../dom.js';

const CLASSES = ['training', 'inference', 'preprocessing'];

export function overviewPage(main) {
  document.title = 'Overview · RFUAV';
  const cards = h('div', { class: 'cards' });
  const slots = h('div', { class: 'table-wrap' });
  const gpus = h('div', { class: 'table-wrap' });
  const nodes = h('div', { class: 'table-wrap' });
  const recent = h('div', { class: 'table-wrap' });
  replace(
    main,
    h('h1', {}, 'Overview'),
    cards,
    h('h2', {}, 'Slots in use / limit'),
    slots,
    h('h2', {}, 'GPUs'),
    gpus,
    nodes,
    h('h2', {}, 'Recent tasks'),
    recent,
  );
  return every(2000, async () => {
    const [health, res, list, cluster] = await Promise.all([
      api('/api/v1/health'),
      api('/api/v2/resources'),
      api('/api/v2/tasks?limit=10'),
      api('/api/v2/nodes').catch(() => null),
    ]);
    const card = (label, n, id) => h('div', { class: 'card', id }, h('div', { class: 'n' }, n), label);
    replace(
      cards,
      card('waiting in the queue', res.queue.length, 'queue-length'),
      card('running', health.resource_status.running, 'running-count'),
      card('GPUs on this node', res.gpu_info.count),
      card('store', health.store),
    );
    replace(slots, slotTable(res));
    replace(gpus, gpuTable(res.gpu_info));
    replace(nodes, cluster && cluster.nodes?.length > 1 ? nodeTable(cluster.nodes) : '');
    const tasks = [...list.training_tasks, ...list.inference_tasks, ...list.other_tasks]
      .sort((a, b) => b.created_at.localeCompare(a.created_at))
      .slice(0, 10);
    replace(recent, tasks.length ? recentTable(tasks) : h('p', { class: 'muted' }, 'No tasks yet.'));
  });
}

/** "used / limit" with a bar of how full it is. */
function slotBar(used, limit) {
  const pct = limit > 0 ? (100 * used) / limit : used > 0 ? 100 : 0;
  return h(
    'span',
    { class: 'slot', title: `${used} in use of ${limit}` },
    progressBar(pct),
    `${used} / ${limit}`,
  );
}

/** A node's slots, device by device: each class with a limit, as a bar. */
function nodeSlots(usage = {}, limits = {}) {
  return Object.entries(limits).map(([dev, lim]) =>
    h(
      'div',
      { class: 'node-slots', 'data-device': dev },
      h('strong', {}, dev),
      CLASSES.filter((c) => (lim[c] ?? 0) > 0 || (usage[dev]?.[c] ?? 0) > 0).map((c) =>
        h('span', { class: 'slot-class' }, c, ' ', slotBar(usage[dev]?.[c] ?? 0, lim[c] ?? 0)),
      ),
    ),
  );
}

function slotTable(res) {
  const classes = CLASSES;
  return h(
    'table',
    { id: 'slots' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, 'device'),
        classes.map((c) => h('th', { class: 'num' }, c)),
      ),
    ),
    h(
      'tbody',
      {},
      Object.entries(res.limits).map(([dev, lim]) =>
        h(
          'tr',
          {},
          h('th', {}, dev),
          classes.map((c) =>
            h('td', { class: 'num' }, slotBar(res.device_usage[dev]?.[c] ?? 0, lim[c] ?? 0)),
          ),
        ),
      ),
    ),
  );
}

function gpuTable(info) {
  if (!info.available || info.devices.length === 0)
    return h('p', { class: 'muted' }, 'No GPU on this node: work runs on the CPU.');
  return h(
    'table',
    { id: 'gpus' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['GPU', 'name', 'utilisation', 'memory used / total (GB)', 'training / inference tasks'].map((t) =>
          h('th', {}, t),
        ),
      ),
    ),
    h(
      'tbody',
      {},
      info.devices.map((d) =>
        h(
          'tr',
          {},
          h('td', {}, d.device_name),
          h('td', {}, d.name),
          h('td', { class: 'num' }, `${Number(d.utilization).toFixed(0)} %`),
          h('td', { class: 'num' }, `${d.used_memory_gb.toFixed(2)} / ${d.total_memory_gb.toFixed(2)}`),
          h('td', { class: 'num' }, `${d.current_tasks.training} / ${d.current_tasks.inference}`),
        ),
      ),
    ),
  );
}

function nodeTable(list) {
  return [
    h('h2', {}, 'Nodes'),
    h(
      'table',
      { id: 'nodes' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['node', 'state', 'heartbeat', 'GPUs', 'slots in use / limit'].map((t) => h('th', {}, t)),
        ),
      ),
      h(
        'tbody',
        {},
        list.map((n) =>
          h(
            'tr',
            { 'data-node': n.name },
            h('td', {}, n.name),
            h('td', {}, n.state),
            h('td', {}, `${Number(n.heartbeat_age_s ?? 0).toFixed(1)} s ago`),
            h('td', { class: 'num' }, (n.devices ?? []).filter((d) => d.kind === 'cuda').length),
            h('td', {}, nodeSlots(n.usage, n.limits)),
          ),
        ),
      ),
    ),
  ];
}

function recentTable(tasks) {
  return h(
    'table',
    {},
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['task', 'kind', 'status', 'device', 'created'].map((t) => h('th', {}, t)),
      ),
    ),
    h(
      'tbody',
      {},
      tasks.map((t) =>
        h(
          'tr',
          {},
          h(
            'td',
            { class: 'mono' },
            h('a', { href: `/ui/tasks/${encodeURIComponent(t.task_id)}` }, shortId(t.task_id)),
          ),
          h('td', {}, t.task_type),
          h('td', {}, statusBadge(t.status)),
          h('td', {}, t.device ?? t.device_request ?? ''),
          h('td', {}, when(t.created_at)),
        ),
      ),
    ),
  );
}
