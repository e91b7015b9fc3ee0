/**
 * Debian's Chromium driven by playwright-core, for tests of pages (never `npx playwright
 * install`: nothing is downloaded). Installed with apt-get when missing and running as root,
 * as the set-up does for torch; otherwise the error says what to run.
 */
import fs from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { aptInstall } from './apt.js';

export const CHROMIUM = process.env.RFUAV_CHROMIUM ?? '/usr/bin/chromium';

/** The flags this workplace's closed network needs (no background connections, no sandbox as root). */
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

function ensureChromium(): void {
  if (fs.existsSync(CHROMIUM)) return;
  if (CHROMIUM === '/usr/bin/chromium' && aptInstall('chromium')) return;
  throw new Error(
    `${CHROMIUM} is missing: run (as root) apt-get install -y chromium, or point RFUAV_CHROMIUM at a Chromium`,
  );
}

export async function launchChromium(): Promise<Browser> {
  ensureChromium();
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}
