// Line charts and heat maps as SVG, drawn from numbers (no library: a few series of at most a
// few hundred points each).
const NS = 'http://www.w3.org/2000/svg';
const COLOURS = [
  '#0b63c5',
  '#d1495b',
  '#2a9d8f',
  '#e9a23b',
  '#7b5ea7',
  '#3c8d2f',
  '#c4458a',
  '#6c757d',
  '#00838f',
  '#8d6e63',
];

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

export function colour(i) {
  return COLOURS[i % COLOURS.length];
}

/** series: [{name, points: [[x, y], …]}] → an SVG with axes, ticks and a legend. */
export function lineChart(series, { title = '', width = 640, height = 260, xLabel = 'epoch' } = {}) {
  const pad = { l: 52, r: 12, t: 24, b: 36 };
  const pts = series.flatMap((x) => x.points);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': title });
  svg.append(s('text', { x: pad.l, y: 14 }, title));
  if (pts.length === 0) {
    svg.append(s('text', { x: width / 2, y: height / 2, 'text-anchor': 'middle' }, 'no data yet'));
    return svg;
  }
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  const X = (v) => pad.l + ((v - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (v) => height - pad.b - ((v - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  svg.append(
    s('line', { class: 'axis', x1: pad.l, y1: height - pad.b, x2: width - pad.r, y2: height - pad.b }),
  );
  svg.append(s('line', { class: 'axis', x1: pad.l, y1: pad.t, x2: pad.l, y2: height - pad.b }));
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    svg.append(s('text', { x: pad.l - 6, y: Y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
    const u = x0 + ((x1 - x0) * i) / 4;
    svg.append(s('text', { x: X(u), y: height - pad.b + 16, 'text-anchor': 'middle' }, fmt(u)));
  }
  svg.append(s('text', { x: width - pad.r, y: height - 4, 'text-anchor': 'end' }, xLabel));
  series.forEach((line, i) => {
    const c = colour(i);
    if (line.points.length > 1)
      svg.append(
        s('polyline', {
          fill: 'none',
          stroke: c,
          'stroke-width': 2,
          points: line.points.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(' '),
        }),
      );
    for (const p of line.points) svg.append(s('circle', { cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: c }));
    svg.append(s('rect', { x: width - pad.r - 150, y: pad.t + i * 15, width: 10, height: 10, fill: c }));
    svg.append(s('text', { x: width - pad.r - 136, y: pad.t + 9 + i * 15 }, line.name));
  });
  return svg;
}

/** A confusion matrix (rows: true class, columns: predicted) as a heat map with counts. */
export function heatMap(labels, matrix, { title = 'confusion matrix' } = {}) {
  const n = labels.length;
  const cell = Math.max(18, Math.min(48, Math.floor(480 / Math.max(1, n))));
  const left = 110;
  const top = 40;
  const width = left + n * cell + 10;
  const height = top + n * cell + 100;
  const svg = s('svg', {
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': title,
    class: 'heatmap',
  });
  svg.append(s('text', { x: left, y: 14 }, `${title} (rows: true class, columns: predicted)`));
  matrix.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    row.forEach((v, j) => {
      const share = v / total;
      const g = s('g', {});
      g.append(
        s('rect', {
          x: left + j * cell,
          y: top + i * cell,
          width: cell - 1,
          height: cell - 1,
          fill: `rgba(11, 99, 197, ${(0.08 + 0.92 * share).toFixed(3)})`,
        }),
      );
      g.append(s('title', {}, `${labels[i]} → ${labels[j]}: ${v}`));
      if (cell >= 22)
        g.append(
          s(
            'text',
            {
              x: left + j * cell + cell / 2,
              y: top + i * cell + cell / 2 + 4,
              'text-anchor': 'middle',
              style: `fill:${share > 0.5 ? '#fff' : 'currentColor'}`,
            },
            String(v),
          ),
        );
      svg.append(g);
    });
    svg.append(s('text', { x: left - 6, y: top + i * cell + cell / 2 + 4, 'text-anchor': 'end' }, labels[i]));
  });
  labels.forEach((l, j) => {
    const x = left + j * cell + cell / 2;
    svg.append(
      s('text', { x, y: top + n * cell + 10, transform: `rotate(60 ${x} ${top + n * cell + 10})` }, l),
    );
  });
  return svg;
}

function fmt(v) {
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(2).replace(/\.?0+$/, '');
  return v.toPrecision(2);
}

/**
 * The epoch metrics worth a curve, in charts of one scale each: losses, accuracies (percent, as
 * the reference reports them) and scores in 0–1. Bookkeeping (epoch, total_epochs, best_acc,
 * learning_rate) is left out.
 */
export function curveGroups(keys) {
  const skip = new Set(['epoch', 'total_epochs', 'best_acc', 'learning_rate']);
  const k = keys.filter((x) => !skip.has(x));
  return [
    { title: 'loss', keys: k.filter((x) => /loss/.test(x)) },
    { title: 'accuracy (%)', keys: k.filter((x) => /_acc$/.test(x)) },
    { title: 'scores (0–1)', keys: k.filter((x) => /f1|precision|recall|mAP/.test(x)) },
  ].filter((g) => g.keys.length > 0);
}
