// /ui/submit/<kind>?from=<task id> — a form for every task kind, generated from the JSON schema
// that validates its requests (read from /openapi.json: a new kind gets its form for free). The
// API's 4xx message is shown beside the field it names; paths are picked from the data root.
import { ApiError, api } from '../api.js';
import { h, replace } from '../dom.js';
import { navigate } from '../nav.js';
import { picker } from '../picker.js';

let openapi = null;

async function requestSchema(route) {
  openapi ??= await fetch('/openapi.json').then((r) => r.json());
  return openapi.paths[route]?.post?.requestBody?.content?.['application/json']?.schema ?? null;
}

export function submitIndexPage(main) {
  document.title = 'New task · RFUAV';
  const list = h('ul', { id: 'kinds' });
  replace(main, h('h1', {}, 'New task'), list);
  void api('/api/v1/info').then((info) =>
    replace(
      list,
      Object.keys(info.task_routes).map((k) => h('li', {}, h('a', { href: `/ui/submit/${k}` }, k))),
    ),
  );
  return undefined;
}

export function submitPage(main, url, kind) {
  document.title = `New ${kind} · RFUAV`;
  replace(main, h('h1', {}, `New ${kind} task`), h('p', { class: 'muted' }, 'Loading the form…'));
  let left = false;
  void (async () => {
    const info = await api('/api/v1/info');
    const route = info.task_routes[kind];
    if (!route) {
      replace(
        main,
        h('h1', {}, 'No such task kind'),
        h('p', {}, `Known kinds: ${Object.keys(info.task_routes).join(', ')}`),
      );
      return;
    }
    const schema = await requestSchema(route);
    const from = url.searchParams.get('from');
    const prefill = from
      ? ((await api(`/api/v2/tasks/${encodeURIComponent(from)}`).catch(() => null))?.parameters ?? {})
      : {};
    if (left) return;
    drawForm(main, kind, route, schema, prefill, from);
  })();
  return () => (left = true);
}

function drawForm(main, kind, route, schema, prefill, from) {
  const required = new Set(schema.required ?? []);
  const props = Object.entries(schema.properties ?? {});
  // Required fields first, then the rest in the schema's order.
  props.sort((a, b) => Number(required.has(b[0])) - Number(required.has(a[0])));
  const fields = props.map(([name, s]) =>
    field(name, s, required.has(name), name === 'task_id' ? undefined : prefill[name]),
  );
  const general = h('p', { class: 'error', role: 'alert', id: 'form-error' });
  const form = h(
    'form',
    { id: 'submit-form', class: 'task-form', novalidate: true },
    fields.map((f) => f.row),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, `Queue the ${kind} task`)),
    general,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    general.textContent = '';
    for (const f of fields) f.error.textContent = '';
    const body = {};
    for (const f of fields) {
      const v = f.value();
      if (v !== undefined) body[f.name] = v;
    }
    try {
      const task = await api(route, { method: 'POST', body });
      navigate(`/ui/tasks/${encodeURIComponent(task.task_id)}`);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      // "train_ratio: must be …": beside that field; otherwise above the button.
      const named = fields.find(
        (f) => err.message.startsWith(`${f.name}:`) || err.message.startsWith(`${f.name} `),
      );
      (named ? named.error : general).textContent = err.message;
      (named?.input ?? general).focus?.();
    }
  });
  replace(
    main,
    h('h1', {}, `New ${kind} task`),
    from
      ? h(
          'p',
          { class: 'muted' },
          'Filled in from task ',
          h('a', { href: `/ui/tasks/${encodeURIComponent(from)}` }, from),
          '.',
        )
      : '',
    h(
      'p',
      { class: 'muted' },
      `Sent to POST ${route}. Empty fields take their defaults; paths are inside the data root.`,
    ),
    form,
  );
}

/** The values a schema allows, when it is a choice (enum, or a union of enums). */
function choices(s) {
  if (Array.isArray(s.enum)) return s.enum;
  if (Array.isArray(s.anyOf) && s.anyOf.every((x) => Array.isArray(x.enum)))
    return s.anyOf.flatMap((x) => x.enum);
  return null;
}

function field(name, s, isRequired, initial) {
  const id = `field-${name}`;
  const error = h('span', { class: 'field-error error', id: `err-${name}`, 'aria-live': 'polite' });
  const hint = [s.description, s.default !== undefined ? `default: ${JSON.stringify(s.default)}` : '']
    .filter(Boolean)
    .join(' · ');
  const common = { id, name, 'aria-describedby': `err-${name} hint-${name}`, required: isRequired };
  const opts = choices(s);
  let input;
  let value;
  let extra = '';
  if (opts) {
    input = h(
      'select',
      common,
      h('option', { value: '' }, isRequired ? 'choose…' : '(default)'),
      opts.map((o) => h('option', { value: o, selected: initial === o }, o)),
    );
    value = () => input.value || undefined;
  } else if (s.type === 'boolean') {
    const shown = initial === undefined ? '' : String(initial);
    input = h(
      'select',
      common,
      h('option', { value: '' }, `(default${s.default !== undefined ? `: ${s.default}` : ''})`),
      ['true', 'false'].map((o) => h('option', { value: o, selected: shown === o }, o)),
    );
    value = () => (input.value === '' ? undefined : input.value === 'true');
  } else if (s.type === 'integer' || s.type === 'number') {
    input = h('input', {
      ...common,
      type: 'number',
      step: s.type === 'integer' ? 1 : 'any',
      min: s.minimum,
      max: s.maximum,
      placeholder: s.default ?? '',
      value: initial ?? undefined,
    });
    value = () => (input.value.trim() === '' ? undefined : Number(input.value));
  } else if (s.type === 'array') {
    const allowed = s.items?.enum;
    input = h('input', {
      ...common,
      placeholder: allowed ? allowed.join(', ') : 'comma-separated',
      value: Array.isArray(initial) ? initial.join(', ') : undefined,
    });
    value = () => {
      const parts = input.value
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean);
      if (parts.length === 0) return undefined;
      return s.items?.type === 'number' || s.items?.type === 'integer' ? parts.map(Number) : parts;
    };
  } else {
    input = h('input', {
      ...common,
      type: 'text',
      maxlength: s.maxLength,
      value: initial ?? undefined,
      placeholder: s.default ?? '',
    });
    value = () => (input.value === '' ? undefined : input.value);
    if (/(_path|_dir|^path)$/.test(name)) extra = picker(input);
  }
  const row = h(
    'div',
    { class: 'form-row' },
    h('label', { for: id }, h('span', {}, name, isRequired ? ' *' : '')),
    h('div', { class: 'form-input' }, input, extra),
    h('small', { class: 'muted', id: `hint-${name}` }, hint),
    error,
  );
  return { name, row, input, error, value };
}
