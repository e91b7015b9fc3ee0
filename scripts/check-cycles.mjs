#!/usr/bin/env node
// Fails when relative imports under the given folder form a cycle (type-only imports included,
// since a cycle of types still ties modules together). Prints each cycle found.
import path from 'node:path';
import { relativeImports, tsFiles } from './imports.mjs';

const root = path.resolve(process.argv[2] ?? 'src');
const graph = new Map(tsFiles(root).map((f) => [f, relativeImports(f)]));

const state = new Map();
const stack = [];
const cycles = [];
function visit(n) {
  state.set(n, 1);
  stack.push(n);
  for (const m of graph.get(n) ?? []) {
    if (!graph.has(m)) continue;
    if (state.get(m) === 1) cycles.push([...stack.slice(stack.indexOf(m)), m]);
    else if (!state.has(m)) visit(m);
  }
  stack.pop();
  state.set(n, 2);
}
for (const n of graph.keys()) if (!state.has(n)) visit(n);
if (cycles.length) {
  for (const c of cycles) console.error('import cycle: ' + c.map((f) => path.relative(root, f)).join(' -> '));
  process.exit(1);
}
console.log(`no import cycles among ${graph.size} modules`);
