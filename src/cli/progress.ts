/** A one-line progress bar on a terminal; plain lines every 10 % elsewhere (logs, CI). */
export class ProgressBar {
  private lastPrinted = -1;
  private drawn: string | null = null;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {}

  update(percent: number, label = ''): void {
    const pct = Math.max(0, Math.min(100, Math.round(percent)));
    if (this.out.isTTY) {
      const width = 30;
      const filled = Math.round((pct / 100) * width);
      const line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(pct).padStart(3)}% ${label}`;
      this.drawn = line.slice(0, (this.out.columns || 100) - 1);
      this.out.write(`\r${this.drawn}\x1b[K`);
    } else if (
      pct === 100 ? this.lastPrinted !== 100 : pct - this.lastPrinted >= 10 || this.lastPrinted < 0
    ) {
      this.out.write(`progress ${pct}% ${label}\n`);
      this.lastPrinted = pct;
    }
  }

  /** Writes `text` (whole lines) to `to` above the bar, which a terminal then shows again below it. */
  above(to: NodeJS.WritableStream, text: string): void {
    const bar = this.drawn;
    this.clear();
    to.write(text);
    if (bar !== null) {
      this.out.write(`\r${bar}\x1b[K`);
      this.drawn = bar;
    }
  }

  /** Takes the bar off the screen (before the final line). */
  clear(): void {
    if (this.drawn !== null && this.out.isTTY) this.out.write('\r\x1b[K');
    this.drawn = null;
  }
}
