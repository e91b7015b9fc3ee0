/** A one-line progress bar on a terminal; plain lines every 10 % elsewhere (logs, CI). */
export class ProgressBar {
  private lastPrinted = -1;
  private drawn = false;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {}

  update(percent: number, label = ''): void {
    const pct = Math.max(0, Math.min(100, Math.round(percent)));
    if (this.out.isTTY) {
      const width = 30;
      const filled = Math.round((pct / 100) * width);
      const line = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(pct).padStart(3)}% ${label}`;
      this.out.write(`\r${line.slice(0, (this.out.columns || 100) - 1)}\x1b[K`);
      this.drawn = true;
    } else if (
      pct === 100 ? this.lastPrinted !== 100 : pct - this.lastPrinted >= 10 || this.lastPrinted < 0
    ) {
      this.out.write(`progress ${pct}% ${label}\n`);
      this.lastPrinted = pct;
    }
  }

  /** Clears the bar so a log line can be printed above it. */
  clear(): void {
    if (this.drawn && this.out.isTTY) this.out.write('\r\x1b[K');
    this.drawn = false;
  }
}
