// What the import checks (check-cycles.mjs, check-layers.mjs) read: the .ts files under a folder
// and each one's relative imports, resolved to .ts paths (type-only imports included).
import fs from 'node:fs';
import path from 'node:path';

/** Files under `dir` whose names end in `ext` (hidden entries and __pycache__ skipped). */
export function filesUnder(dir, ext) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') || e.name === '__pycache__') continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p, ext));
    else if (p.endsWith(ext)) out.push(p);
  }
  return out;
}

export function tsFiles(dir) {
  return filesUnder(dir, '.ts');
}

export function relativeImports(file) {
  const text = fs.readFileSync(file, 'utf8');
  const out = [];
  for (const m of text.matchAll(/(?:import|export)[^'"]*?from\s+'(\.[^']+)'|import\('(\.[^']+)'\)/g)) {
    const spec = m[1] ?? m[2];
    out.push(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
  }
  return out;
}
