/** How the CLI prints log entries, epoch metrics and tables. */
import type { Static } from '@sinclair/typebox';
import { formatMetric } from '../domain/metrics.js';
import type { TaskSchema } from '../http/schemas.js';

/** A task as the API answers it. */
export type TaskView = Static<typeof TaskSchema>;

/** A log line of a task's stream (SPEC §2.7). */
export interface LogLine {
  timestamp?: string;
  level?: string;
  message?: string;
  stage?: string;
  step?: number;
  metrics?: Record<string, unknown>;
}

/** `12:34:56 INFO    message`; an entry with metrics gets indented lines of them below. */
export function formatEntry(e: LogLine): string {
  const t = e.timestamp ? e.timestamp.slice(11, 19) : '';
  const line = `${t} ${(e.level ?? 'INFO').padEnd(7)} ${e.message ?? ''}`;
  const indent = ' '.repeat(t.length + 1);
  const metrics = e.metrics ? metricLines(e.metrics, e.message ?? '', 100 - indent.length) : [];
  return [line, ...metrics.map((m) => `${indent}${m}`)].join('\n');
}

/** Counters and timings, not scores. */
const NOT_SHOWN = /^(epoch|total_epochs|.*_seconds)$/;

/**
 * The numeric metrics of an entry, `name value` each (accuracies in percent, as the API gives
 * them), in lines of at most `width`. A value the entry's message already shows, as formatted (an
 * epoch line's losses and accuracies), is not repeated.
 */
export function metricLines(metrics: Record<string, unknown>, message: string, width: number): string[] {
  const items = Object.entries(metrics)
    .filter(([k, v]) => typeof v === 'number' && !NOT_SHOWN.test(k))
    .map(([k, v]) => [k, shownValue(k, v as number)])
    .filter(([, shown]) => !message.includes(shown as string))
    .map(([k, shown]) => `${k} ${shown}`);
  const lines: string[] = [];
  for (const item of items) {
    const last = lines.at(-1);
    if (last !== undefined && last.length + 2 + item.length <= width)
      lines[lines.length - 1] = `${last}  ${item}`;
    else lines.push(item);
  }
  return lines;
}

/** As the API's other clients show a metric; a small value (a learning rate) keeps its digits. */
function shownValue(name: string, v: number): string {
  const shown = formatMetric(name, v);
  return v !== 0 && Number.parseFloat(shown) === 0 ? v.toPrecision(3) : shown;
}

/** 100e6 rather than 100000000: how sample rates are written. */
export function compact(n: number): string {
  for (const k of [9, 6, 3])
    if (Math.abs(n) >= 10 ** (k + 2) && n % 10 ** k === 0) return `${n / 10 ** k}e${k}`;
  return String(n);
}

/** Columns padded to their widest cell; the first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
