// /ui/explorer?path=<recording>&model=<model folder>&offset=<s> — the spectrogram explorer: scrub
// through a raw IQ recording; the slice under the cursor is drawn by the service's own STFT kernel
// at the size of the screen (GET /api/v2/signal/slice), and with a model, classified by the
// predict path (POST /api/v2/inference/predict with path and offset), with a strip of predictions
// along the whole recording. The signal fields default to the model card's (GET /api/v2/signal/info).
import { api, apiBlob } from '../api.js';
import { h, replace } from '../dom.js';
import { navigate } from '../nav.js';
import { picker } from '../picker.js';

/** Fields the URL may override (else the model card's, else the spectrogram task's defaults). */
const FIELDS = ['sample_rate', 'stft_point', 'duration_time', 'ratio', 'dtype', 'render'];
/** What predict takes of them (ratio only places slices, it does not change one). */
const PREDICT_FIELDS = ['sample_rate', 'stft_point', 'duration_time', 'dtype', 'render'];
const STRIP_MAX = 60;
const STRIP_PARALLEL = 3;

/** A colour per class index, distinct in light and dark. */
function classColour(i) {
  return `hsl(${(i * 137.508) % 360} 65% 50%)`;
}

export function explorerPage(main, url) {
  document.title = 'Spectrogram explorer · RFUAV';
  const q = url.searchParams;
  const path = q.get('path') ?? '';
  const model = q.get('model') ?? '';
  const overrides = {};
  for (const f of FIELDS) if (q.get(f)) overrides[f] = q.get(f);
  // The one slice picture shown (a blob: URL), released when replaced or when the page is left.
  const state = { alive: true, picture: null };

  const pathInput = h('input', { id: 'ex-path', name: 'path', value: path, size: 40, required: true });
  const modelInput = h('input', { id: 'ex-model', name: 'model', value: model, size: 30 });
  const form = h(
    'form',
    {
      class: 'filters',
      id: 'explorer-form',
      onsubmit: (e) => {
        e.preventDefault();
        const next = new URLSearchParams({ path: pathInput.value.trim() });
        if (modelInput.value.trim()) next.set('model', modelInput.value.trim());
        navigate(`/ui/explorer?${next}`);
      },
    },
    h('label', {}, 'Recording (.iq, .dat)', h('span', { class: 'form-input' }, pathInput, picker(pathInput))),
    h(
      'label',
      {},
      'Model folder (optional)',
      h('span', { class: 'form-input' }, modelInput, picker(modelInput)),
    ),
    h('button', { type: 'submit' }, 'Open'),
  );
  const view = h('div', { id: 'explorer' });
  replace(main, h('h1', {}, 'Spectrogram explorer'), form, view);
  if (!path) {
    replace(
      view,
      h(
        'p',
        { class: 'muted' },
        'Pick a raw IQ recording in the data root (interleaved I/Q, float32 or int16) and, to classify what you see, a trained model folder.',
      ),
    );
    return undefined;
  }
  const query = new URLSearchParams({ path, ...(model ? { model } : {}), ...overrides });
  replace(view, h('p', { class: 'muted' }, 'Reading the recording…'));
  api(`/api/v2/signal/info?${query}`)
    .then((info) => state.alive && drawExplorer(view, info, { path, model, overrides, query, url, state }))
    .catch(
      (err) => state.alive && replace(view, h('p', { class: 'error', id: 'explorer-error' }, err.message)),
    );
  return () => {
    state.alive = false;
    if (state.picture) URL.revokeObjectURL(state.picture);
  };
}

function drawExplorer(view, info, ctx) {
  const s = info.signal;
  const step = s.duration_time * 2 ** -s.ratio;
  const maxOffset = Math.max(0, info.duration_s - s.duration_time);
  const start = Math.min(maxOffset, Math.max(0, Number(ctx.url.searchParams.get('offset')) || 0));
  const slider = h('input', {
    type: 'range',
    id: 'offset',
    min: 0,
    max: maxOffset,
    step: Math.max(step / 4, 1 / s.sample_rate),
    value: start,
    'aria-label': 'slice start (seconds)',
    disabled: info.slices === 0 ? true : undefined,
  });
  const at = h('output', { id: 'offset-value', for: 'offset' });
  const img = h('img', { id: 'slice', alt: 'spectrogram of the slice under the cursor' });
  const figure = h(
    'figure',
    { class: 'slice-figure' },
    img,
    h(
      'figcaption',
      { class: 'muted' },
      `time → ${s.duration_time} s per slice · frequency ↑ ±${fmtHz(s.sample_rate / 2)} · ${s.stft_point}-point STFT`,
    ),
  );
  const prediction = h('div', { id: 'prediction', 'aria-live': 'polite' });
  const strip = h('div', {
    id: 'strip',
    class: 'strip',
    role: 'group',
    'aria-label': 'predictions along the recording',
  });
  const cursor = h('div', { class: 'strip-cursor' });
  const legend = h('p', { class: 'legend', id: 'strip-legend' });
  replace(
    view,
    h(
      'p',
      { id: 'recording-info' },
      h('strong', { class: 'mono' }, info.path),
      ` — ${info.duration_s.toFixed(4)} s, ${info.samples.toLocaleString()} samples (${s.dtype}, ${fmtHz(s.sample_rate)}), `,
      `${info.slices} slice${info.slices === 1 ? '' : 's'} of ${info.slice_samples.toLocaleString()} samples`,
      info.model ? ` · model ${info.model.model} (${info.model.labels.length} classes)` : '',
    ),
    settingsForm(info, ctx),
    info.slices === 0
      ? h('p', { class: 'error', id: 'explorer-error' }, 'The recording is shorter than one slice.')
      : h('div', { class: 'scrub' }, h('label', { for: 'offset' }, 'Slice start'), slider, at),
    h('div', { class: 'explorer-main' }, figure, info.model ? prediction : ''),
    info.model
      ? h(
          'div',
          {},
          h('h2', {}, 'Predictions along the recording'),
          h('div', { class: 'strip-wrap' }, strip, cursor),
          legend,
        )
      : h('p', { class: 'muted' }, 'Name a model folder above to classify the slices.'),
  );
  if (info.slices === 0) return;

  const base = ctx.query;
  const labels = info.model?.labels ?? [];
  const show = latest(async (offset) => {
    const width = Math.min(2048, Math.max(320, Math.round(figure.clientWidth || 800)));
    const height = Math.round(Math.min(720, Math.max(200, width * 0.45)));
    const p = new URLSearchParams(base);
    p.set('offset', String(offset));
    p.set('width', String(width));
    p.set('height', String(height));
    const blob = await apiBlob(`/api/v2/signal/slice?${p}`);
    figure.querySelector('.error')?.remove();
    const old = ctx.state.picture;
    ctx.state.picture = URL.createObjectURL(blob);
    img.src = ctx.state.picture;
    img.dataset.offset = String(offset);
    if (old) URL.revokeObjectURL(old);
  });
  const classify = latest(async (offset) => {
    const answer = await predictAt(ctx, offset);
    drawPrediction(prediction, answer, offset, labels);
  });
  const move = (offset, { record } = { record: false }) => {
    at.value = `${offset.toFixed(4)} s`;
    cursor.style.left = `${maxOffset > 0 ? (offset / maxOffset) * 100 : 0}%`;
    show(offset).catch((err) => failed(figure, err));
    if (info.model)
      classify(offset).catch((err) => replace(prediction, h('p', { class: 'error' }, err.message)));
    if (record) {
      const u = new URL(location.href);
      u.searchParams.set('offset', String(offset));
      history.replaceState(null, '', u.pathname + u.search);
    }
  };
  slider.addEventListener('input', () => move(Number(slider.value)));
  slider.addEventListener('change', () => move(Number(slider.value), { record: true }));
  move(start);
  if (info.model)
    void fillStrip(strip, legend, info, ctx, (offset) => {
      slider.value = String(offset);
      move(offset, { record: true });
    });
}

/** The signal fields, from the URL, the model card or the defaults; Apply puts changes in the URL. */
function settingsForm(info, ctx) {
  const s = info.signal;
  const inputs = FIELDS.map((f) => {
    const from = info.from_card.includes(f) ? ' (model card)' : ctx.overrides[f] ? ' (set here)' : '';
    const input =
      f === 'dtype' || f === 'render'
        ? h(
            'select',
            { name: f, id: `ex-${f}` },
            (f === 'dtype' ? ['float32', 'int16'] : ['matplotlib', 'power']).map((v) =>
              h('option', { value: v, selected: v === s[f] ? true : undefined }, v),
            ),
          )
        : h('input', { name: f, id: `ex-${f}`, type: 'number', step: 'any', value: s[f], size: 10 });
    return { f, input, row: h('label', { for: `ex-${f}` }, `${f}${from}`, input) };
  });
  return h(
    'form',
    {
      class: 'filters',
      id: 'signal-form',
      onsubmit: (e) => {
        e.preventDefault();
        const next = new URLSearchParams({ path: ctx.path, ...(ctx.model ? { model: ctx.model } : {}) });
        // A field set here before stays set; another is set once it differs from what is shown.
        for (const { f, input } of inputs)
          if (ctx.overrides[f] !== undefined || String(input.value) !== String(s[f]))
            next.set(f, input.value);
        navigate(`/ui/explorer?${next}`);
      },
    },
    inputs.map((i) => i.row),
    h('button', { type: 'submit' }, 'Apply'),
  );
}

async function predictAt(ctx, offset) {
  const body = { model: ctx.model, path: ctx.path, offset, top_k: 5 };
  for (const f of PREDICT_FIELDS) {
    const v = ctx.overrides[f];
    if (v !== undefined) body[f] = f === 'dtype' || f === 'render' ? v : Number(v);
  }
  return api('/api/v2/inference/predict', { method: 'POST', body });
}

function drawPrediction(el, answer, offset, labels) {
  replace(
    el,
    h('h2', {}, 'This slice'),
    h(
      'p',
      { class: 'prediction-class' },
      h('span', { class: 'swatch', style: `background:${classColour(labels.indexOf(answer.class))}` }),
      h('strong', { id: 'predicted-class' }, answer.class),
      ` ${(answer.confidence * 100).toFixed(1)} %`,
    ),
    h(
      'table',
      { id: 'top-k' },
      h(
        'tbody',
        {},
        answer.top_k.map((t) =>
          h(
            'tr',
            {},
            h('td', {}, t.class),
            h('td', { class: 'num' }, `${(t.confidence * 100).toFixed(1)} %`),
            h('td', {}, h('div', { class: 'bar' }, h('span', { style: `width:${t.confidence * 100}%` }))),
          ),
        ),
      ),
    ),
    h('p', { class: 'muted' }, `at ${offset.toFixed(4)} s · ${answer.latency_ms.toFixed(0)} ms`),
  );
}

/** Predictions at up to STRIP_MAX slices spread over the recording, a few requests at a time. */
async function fillStrip(strip, legend, info, ctx, onPick) {
  const s = info.signal;
  const step = s.duration_time * 2 ** -s.ratio;
  const every = Math.ceil(info.slices / STRIP_MAX);
  const offsets = [];
  for (let i = 0; i < info.slices; i += every) offsets.push(i * step);
  const labels = info.model.labels;
  const cells = offsets.map((offset) =>
    h('button', {
      type: 'button',
      class: 'strip-cell',
      'data-offset': offset,
      title: `${offset.toFixed(4)} s`,
      'aria-label': `slice at ${offset.toFixed(4)} s`,
      onclick: () => onPick(offset),
    }),
  );
  replace(strip, cells);
  const seen = new Set();
  let next = 0;
  const worker = async () => {
    while (ctx.state.alive && next < offsets.length) {
      const i = next++;
      const cell = cells[i];
      try {
        const a = await predictAt(ctx, offsets[i]);
        cell.style.background = classColour(labels.indexOf(a.class));
        cell.dataset.class = a.class;
        cell.title = `${offsets[i].toFixed(4)} s: ${a.class} (${(a.confidence * 100).toFixed(0)} %)`;
        cell.setAttribute('aria-label', cell.title);
        if (!seen.has(a.class)) {
          seen.add(a.class);
          replace(
            legend,
            [...seen]
              .sort()
              .map((c) =>
                h(
                  'span',
                  {},
                  h('span', { class: 'swatch', style: `background:${classColour(labels.indexOf(c))}` }),
                  c,
                ),
              ),
          );
        }
      } catch (err) {
        cell.classList.add('failed');
        cell.title = `${offsets[i].toFixed(4)} s: ${err.message}`;
      }
    }
  };
  await Promise.all(Array.from({ length: STRIP_PARALLEL }, worker));
  strip.dataset.done = 'true';
}

/**
 * Wraps an async `fn(arg, signal)` so that only the latest call matters: while one runs, later
 * calls replace each other and the last one runs next (scrubbing never queues up requests).
 */
function latest(fn) {
  let running = false;
  let pending = null;
  const run = async (arg) => {
    running = true;
    try {
      await fn(arg);
    } finally {
      running = false;
      if (pending) {
        const p = pending;
        pending = null;
        run(p.arg).then(p.resolve, p.reject);
      }
    }
  };
  return (arg) => {
    if (!running) return run(arg);
    if (pending) pending.resolve();
    return new Promise((resolve, reject) => (pending = { arg, resolve, reject }));
  };
}

function failed(figure, err) {
  let note = figure.querySelector('.error');
  if (!note) figure.append((note = h('p', { class: 'error' })));
  note.textContent = err.message;
}

function fmtHz(hz) {
  if (hz >= 1e9) return `${+(hz / 1e9).toFixed(3)} GHz`;
  if (hz >= 1e6) return `${+(hz / 1e6).toFixed(3)} MHz`;
  if (hz >= 1e3) return `${+(hz / 1e3).toFixed(3)} kHz`;
  return `${hz} Hz`;
}
