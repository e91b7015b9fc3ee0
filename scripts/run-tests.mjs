#!/usr/bin/env node
// Runs every test/**/*.test.ts with Node's own test runner (through tsx), then prints the counts.
// Node 20's --test does not expand globs, so the files are listed here.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const only = process.argv.slice(2);

function find(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...find(p));
    else if (e.name.endsWith('.test.ts')) out.push(path.relative(root, p));
  }
  return out.sort();
}

const files = find(path.join(root, 'test')).filter(
  (f) => only.length === 0 || only.some((o) => f.includes(o)),
);
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-concurrency=2', ...files],
  { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RFUAV_TEST: '1' } },
);
// The whole output is kept: the reporter prints its summary before the details of failures,
// which can be long, so the counts are not necessarily near the end.
let output = '';
child.stdout.on('data', (d) => {
  process.stdout.write(d);
  output += d.toString();
});
child.on('close', (code) => {
  const num = (label) => Number([...output.matchAll(new RegExp(`ℹ ${label} (\\d+)`, 'g'))].at(-1)?.[1] ?? 0);
  const passed = num('pass');
  const failed = num('fail');
  const skipped = num('skipped');
  console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(code ?? 1);
});
