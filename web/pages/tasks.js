// /ui/tasks?status=&kind=&owner=&q=&before= — every task (or one user's; owner=me: the caller's), newest first, filtered and paged on the server
// (`before`: the page after that task, so new tasks never shift a page); refreshed every 2 s, so
// new tasks appear and statuses change without a reload.
import { api } from '../api.js';
import { every, h, progressBar, replace, shortId, statusBadge, when } from '../dom.js';
import { navigate } from '../nav.js';

const PAGE_SIZE = 50;
const STATUSES = ['pending', 'queued', 'running', 'completed', 'failed', 'cancelled'];

export function taskListPage(main, url) {
  document.title = 'Tasks · RFUAV';
  const q = url.searchParams;
  const status = q.get('status') ?? '';
  const kind = q.get('kind') ?? '';
  const idPrefix = q.get('q') ?? '';
  const before = q.get('before') ?? '';
  const owner = q.get('owner') ?? '';

  const kindSelect = h('select', { name: 'kind', id: 'f-kind' }, h('option', { value: '' }, 'any'));
  const statusSelect = h(
    'select',
    { name: 'status', id: 'f-status' },
    h('option', { value: '' }, 'any'),
    STATUSES.map((s) => h('option', { value: s, selected: s === status }, s)),
  );
  const search = h('input', {
    name: 'q',
    id: 'f-q',
    value: idPrefix,
    placeholder: 'task id starts with',
    maxlength: 64,
  });
  const ownerInput = h('input', {
    name: 'owner',
    id: 'f-owner',
    value: owner,
    placeholder: 'anyone (me: mine)',
    size: 12,
    maxlength: 64,
  });
  const apply = () => {
    const next = new URLSearchParams();
    if (statusSelect.value) next.set('status', statusSelect.value);
    if (kindSelect.value) next.set('kind', kindSelect.value);
    if (ownerInput.value.trim()) next.set('owner', ownerInput.value.trim());
    if (search.value.trim()) next.set('q', search.value.trim());
    navigate(`/ui/tasks${next.size ? `?${next}` : ''}`, { replaceState: true });
  };
  statusSelect.addEventListener('change', apply);
  kindSelect.addEventListener('change', apply);
  const form = h(
    'form',
    { class: 'filters', role: 'search', onsubmit: (e) => (e.preventDefault(), apply()) },
    h('label', { for: 'f-status' }, 'status', statusSelect),
    h('label', { for: 'f-kind' }, 'kind', kindSelect),
    h('label', { for: 'f-owner' }, 'owner', ownerInput),
    h('label', { for: 'f-q' }, 'id', search),
    h('button', { type: 'submit' }, 'Filter'),
    owner === 'me'
      ? h('a', { href: '/ui/tasks', id: 'all-tasks' }, 'Everyone’s tasks')
      : h('a', { href: '/ui/tasks?owner=me', id: 'my-tasks' }, 'My tasks'),
  );
  const table = h('div', { class: 'table-wrap', id: 'task-table' });
  const pager = h('div', { class: 'pager' });
  // Training runs ticked here are compared on /ui/compare (kept across refreshes of the rows).
  const selected = new Set();
  const compare = h('a', { id: 'compare-link', hidden: true }, 'Compare');
  const toggle = (id, on) => {
    if (on) selected.add(id);
    else selected.delete(id);
    compare.hidden = selected.size === 0;
    compare.textContent = `Compare ${selected.size} run(s)`;
    compare.href = `/ui/compare?ids=${[...selected].map(encodeURIComponent).join(',')}`;
  };
  replace(main, h('h1', {}, 'Tasks'), form, h('div', { class: 'actions' }, compare), table, pager);

  void api('/api/v1/info').then((info) => {
    for (const k of info.task_types) kindSelect.append(h('option', { value: k, selected: k === kind }, k));
  });

  const pageHref = (after) => {
    const next = new URLSearchParams(q);
    if (after) next.set('before', after);
    else next.delete('before');
    return `/ui/tasks${next.size ? `?${next}` : ''}`;
  };

  return every(2000, async () => {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE + 1) });
    if (before) params.set('before', before);
    if (status) params.set('status', status);
    if (kind) params.set('task_type', kind);
    if (idPrefix) params.set('q', idPrefix);
    if (owner) params.set('owner', owner);
    const list = await api(`/api/v2/tasks?${params}`);
    // Three groups, each paged alike: merged newest first, one page's worth shown.
    const all = [...list.training_tasks, ...list.inference_tasks, ...list.other_tasks].sort((a, b) =>
      b.created_at.localeCompare(a.created_at),
    );
    const tasks = all.slice(0, PAGE_SIZE);
    const total = list.total_training + list.total_inference + list.total_other;
    const more = all.length > PAGE_SIZE;
    replace(
      table,
      tasks.length ? rows(tasks, selected, toggle) : h('p', { class: 'muted' }, 'No task matches.'),
    );
    replace(
      pager,
      before ? h('a', { href: pageHref(''), rel: 'first' }, '← newest') : '',
      h('span', { class: 'muted' }, idPrefix ? `${tasks.length} shown` : `${total} task(s) in all`),
      more ? h('a', { href: pageHref(tasks.at(-1).task_id), rel: 'next' }, 'older →') : '',
    );
  });
}

function rows(tasks, selected, toggle) {
  return h(
    'table',
    {},
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', {}, h('span', { class: 'visually-hidden' }, 'compare')),
        h('th', {}, 'task'),
        h('th', {}, 'kind'),
        h('th', {}, 'status'),
        h('th', {}, 'owner'),
        h('th', {}, 'device'),
        h('th', { class: 'hide-narrow' }, 'progress'),
        h('th', { class: 'hide-narrow' }, 'message'),
        h('th', { class: 'hide-narrow' }, 'created'),
      ),
    ),
    h(
      'tbody',
      {},
      tasks.map((t) =>
        h(
          'tr',
          { 'data-task': t.task_id },
          h(
            'td',
            {},
            t.task_type === 'training'
              ? h('input', {
                  type: 'checkbox',
                  'aria-label': `compare ${t.task_id}`,
                  checked: selected.has(t.task_id),
                  onchange: (e) => toggle(t.task_id, e.currentTarget.checked),
                })
              : '',
          ),
          h(
            'td',
            { class: 'mono' },
            h(
              'a',
              { href: `/ui/tasks/${encodeURIComponent(t.task_id)}`, title: t.task_id },
              shortId(t.task_id),
            ),
            t.name ? h('div', { class: 'muted' }, t.name) : '',
          ),
          h('td', {}, t.task_type),
          h('td', {}, statusBadge(t.status)),
          h('td', { class: 'owner' }, t.owner ?? ''),
          h('td', {}, t.node ? `${t.device ?? ''} @ ${t.node}` : (t.device ?? t.device_request ?? '')),
          h('td', { class: 'hide-narrow' }, progressBar(t.progress)),
          h('td', { class: 'hide-narrow' }, t.pending_reason ?? t.message ?? ''),
          h('td', { class: 'hide-narrow' }, when(t.created_at)),
        ),
      ),
    ),
  );
}
