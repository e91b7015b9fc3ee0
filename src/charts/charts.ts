/**
 * Report charts as SVG, rasterised to PNG with sharp (librsvg): the confusion matrix and the
 * accuracy-vs-SNR plot of an evaluation. Plain SVG keeps them dependency-free and testable.
 */
import sharp from 'sharp';

const FONT = 'DejaVu Sans, Arial, Helvetica, sans-serif';

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function text(x: number, y: number, s: string, size: number, extra = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-family="${FONT}" font-size="${size}" ${extra}>${esc(s)}</text>`;
}

/** Rows are true classes, columns predictions; cells shaded by the row-normalised rate. */
export function confusionMatrixSvg(labels: string[], matrix: number[][], title = 'Confusion matrix'): string {
  const n = labels.length;
  const cell = Math.max(28, Math.min(80, Math.floor(640 / Math.max(1, n))));
  const labelW = Math.min(220, 20 + 8 * Math.max(4, ...labels.map((l) => l.length)));
  const left = labelW + 30;
  const top = 60;
  const width = Math.max(left + n * cell + 30, 380);
  const height = top + n * cell + labelW + 30;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    text(20, 30, title, 18, 'font-weight="bold"'),
  ];
  const fontSize = Math.max(9, Math.min(16, cell / 3));
  for (let r = 0; r < n; r++) {
    const row = matrix[r] ?? [];
    const total = row.reduce((a, b) => a + b, 0);
    for (let c = 0; c < n; c++) {
      const v = row[c] ?? 0;
      const rate = total > 0 ? v / total : 0;
      // White → dark blue, the usual confusion-matrix scale.
      const shade = (k: number) => Math.round(255 - rate * (255 - k));
      const fill = `rgb(${shade(8)},${shade(48)},${shade(107)})`;
      const x = left + c * cell;
      const y = top + r * cell;
      parts.push(
        `<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${fill}" stroke="#cccccc"/>`,
      );
      parts.push(
        text(
          x + cell / 2,
          y + cell / 2 + fontSize / 3,
          String(v),
          fontSize,
          `text-anchor="middle" fill="${rate > 0.5 ? '#ffffff' : '#000000'}"`,
        ),
      );
    }
    parts.push(text(left - 6, top + r * cell + cell / 2 + 4, labels[r] ?? '', 12, 'text-anchor="end"'));
  }
  for (let c = 0; c < n; c++) {
    const x = left + c * cell + cell / 2 + 4;
    const y = top + n * cell + 8;
    parts.push(text(x, y, labels[c] ?? '', 12, `text-anchor="end" transform="rotate(-60 ${x} ${y})"`));
  }
  parts.push(
    text(
      12,
      top + (n * cell) / 2,
      'true class',
      13,
      `transform="rotate(-90 12 ${top + (n * cell) / 2})" text-anchor="middle"`,
    ),
  );
  parts.push(text(left + (n * cell) / 2, height - 8, 'predicted class', 13, 'text-anchor="middle"'));
  parts.push('</svg>');
  return parts.join('\n');
}

export interface SnrPoint {
  label: string;
  snr_db: number | null;
  accuracy: number;
  samples: number;
}

/** Accuracy (percent, 0–100) against SNR; points in the given order, x at their dB value when all have one. */
export function accuracyVsSnrSvg(points: SnrPoint[], title = 'Accuracy vs SNR'): string {
  const width = 720;
  const height = 440;
  const m = { left: 70, right: 30, top: 50, bottom: 60 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const numeric = points.every((p) => p.snr_db !== null);
  const xs = points.map((p, i) => (numeric ? (p.snr_db as number) : i));
  let lo = Math.min(...xs);
  let hi = Math.max(...xs);
  if (!(hi > lo)) {
    lo -= 1;
    hi += 1;
  }
  const px = (x: number) => m.left + ((x - lo) / (hi - lo)) * pw;
  const py = (a: number) => m.top + (1 - a / 100) * ph;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    text(m.left, 30, title, 18, 'font-weight="bold"'),
  ];
  for (let k = 0; k <= 100; k += 20) {
    const y = py(k);
    parts.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#e0e0e0"/>`);
    parts.push(text(m.left - 8, y + 4, `${k}`, 12, 'text-anchor="end"'));
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333333"/>`);
  points.forEach((p, i) => {
    const x = px(xs[i] as number);
    parts.push(
      text(x, m.top + ph + 20, numeric ? `${p.snr_db as number}` : p.label, 12, 'text-anchor="middle"'),
    );
  });
  const path = points
    .map((p, i) => `${i ? 'L' : 'M'}${px(xs[i] as number).toFixed(1)},${py(p.accuracy).toFixed(1)}`)
    .join(' ');
  parts.push(`<path d="${path}" fill="none" stroke="#1f77b4" stroke-width="2.5"/>`);
  points.forEach((p, i) => {
    parts.push(
      `<circle cx="${px(xs[i] as number).toFixed(1)}" cy="${py(p.accuracy).toFixed(1)}" r="4.5" fill="#1f77b4"/>`,
    );
  });
  parts.push(
    text(m.left + pw / 2, height - 15, numeric ? 'SNR (dB)' : 'SNR folder', 13, 'text-anchor="middle"'),
  );
  parts.push(
    text(
      18,
      m.top + ph / 2,
      'accuracy (%)',
      13,
      `transform="rotate(-90 18 ${m.top + ph / 2})" text-anchor="middle"`,
    ),
  );
  parts.push('</svg>');
  return parts.join('\n');
}

export async function svgToPng(svg: string, file: string): Promise<void> {
  await sharp(Buffer.from(svg)).png().toFile(file);
}
