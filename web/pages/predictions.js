// An inference task's predictions (its predictions.json, read through GET /api/v2/files/content),
// a page at a time, each with a thumbnail: the annotated copy of an image, or a recording's frame
// drawn by the service (GET /api/v2/signal/slice) as the task sliced it, with a link that opens
// the frame in the spectrogram explorer.
import { api, apiBlob } from '../api.js';
import { h, replace } from '../dom.js';

const PAGE = 50;
const THUMB = { width: 160, height: 96 };
const PARALLEL = 4;

/** The section, filled in once predictions.json is read; `objectUrls` collects what to revoke. */
export function predictionsView(task, objectUrls) {
  const r = task.result;
  const el = h(
    'section',
    { id: 'predictions' },
    h('h3', {}, 'Predictions'),
    h('p', { class: 'muted' }, 'Loading…'),
  );
  const file = `${r.output_path}/${r.predictions_json}`;
  api(`/api/v2/files/content?path=${encodeURIComponent(file)}`)
    .then((list) => drawPage(el, list, 0, task.parameters ?? {}, objectUrls))
    .catch((err) => replace(el, h('h3', {}, 'Predictions'), h('p', { class: 'error' }, err.message)));
  return el;
}

function drawPage(el, list, page, params, objectUrls) {
  const pages = Math.max(1, Math.ceil(list.length / PAGE));
  const rows = list.slice(page * PAGE, (page + 1) * PAGE);
  const go = (p) => drawPage(el, list, p, params, objectUrls);
  const thumbs = [];
  const pct = (c) => `${(c * 100).toFixed(1)} %`;
  const table = h(
    'table',
    { id: 'predictions-table' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['', 'file', 'frame', 'class', 'confidence', 'next best'].map((x) => h('th', {}, x)),
      ),
    ),
    h(
      'tbody',
      {},
      rows.map((p) => {
        const img = h('img', {
          class: 'thumb',
          alt: `${p.file}${p.frame ? ` frame ${p.frame}` : ''}`,
          ...THUMB,
        });
        const src = thumbnailUrl(p, params);
        if (src) thumbs.push({ img, src });
        const explore = p.frame !== null && explorerUrl(p, params);
        return h(
          'tr',
          { 'data-file': p.file, 'data-frame': p.frame ?? '' },
          h('td', {}, explore ? h('a', { href: explore, title: 'open in the explorer' }, img) : img),
          h('td', { class: 'mono' }, p.file),
          h('td', { class: 'num' }, p.frame ?? ''),
          h('td', {}, h('strong', {}, p.class)),
          h('td', { class: 'num' }, pct(p.confidence)),
          h(
            'td',
            { class: 'muted' },
            (p.top5 ?? [])
              .slice(1, 3)
              .map((t) => `${t.class} ${pct(t.confidence)}`)
              .join(' · '),
          ),
        );
      }),
    ),
  );
  replace(
    el,
    h('h3', {}, `Predictions (${list.length})`),
    h('div', { class: 'table-wrap' }, table),
    pages > 1
      ? h(
          'p',
          { class: 'pager' },
          h(
            'button',
            { type: 'button', disabled: page === 0 ? true : undefined, onclick: () => go(page - 1) },
            '← previous',
          ),
          ` ${page * PAGE + 1}–${page * PAGE + rows.length} of ${list.length} `,
          h(
            'button',
            { type: 'button', disabled: page + 1 >= pages ? true : undefined, onclick: () => go(page + 1) },
            'next →',
          ),
        )
      : '',
  );
  void loadThumbnails(thumbs, objectUrls, el);
}

/** The annotated copy (or the image itself), or a recording's frame as the task drew it. */
function thumbnailUrl(p, params) {
  if (p.frame === null || p.frame === undefined) {
    const file = p.annotated ?? p.path;
    return file ? `/api/v2/files/content?path=${encodeURIComponent(file)}` : null;
  }
  if (!p.path || !params.sample_rate) return null;
  const q = frameQuery(p, params);
  q.set('width', String(THUMB.width));
  q.set('height', String(THUMB.height));
  return `/api/v2/signal/slice?${q}`;
}

/** Where frame `p.frame` (from 1) starts, as the task sliced the recording, and how it was drawn. */
function frameQuery(p, params) {
  const first = Math.floor((p.frame - 1) * 2 ** -params.ratio * params.samples_per_slice);
  const q = new URLSearchParams({ path: p.path, offset: String(first / params.sample_rate) });
  for (const f of ['sample_rate', 'stft_point', 'dtype', 'render', 'ratio'])
    if (params[f] !== undefined) q.set(f, String(params[f]));
  q.set('duration_time', String(params.samples_per_slice / params.sample_rate));
  return q;
}

/** The explorer at this frame, with the model when the task named a model folder's card. */
function explorerUrl(p, params) {
  if (!p.path || !params.sample_rate) return null;
  const q = frameQuery(p, params);
  const cfg = params.cfg_path ?? '';
  if (cfg.endsWith('/config.yaml')) q.set('model', cfg.slice(0, -'/config.yaml'.length));
  return `/ui/explorer?${q}`;
}

async function loadThumbnails(thumbs, objectUrls, el) {
  let next = 0;
  const worker = async () => {
    while (next < thumbs.length && el.isConnected) {
      const { img, src } = thumbs[next++];
      try {
        const u = URL.createObjectURL(await apiBlob(src));
        objectUrls.push(u);
        img.src = u;
      } catch (err) {
        img.replaceWith(h('span', { class: 'muted', title: err.message }, '—'));
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
}
