#!/usr/bin/env node
// Fails when a function is longer than MAX_LINES (issue 13, point 3): a function that long does
// several things, and the next reader has to find out which by reading all of it. A function's
// length runs from its first line to its closing brace (or, in Python, to the last line of its
// body), nested closures included: a closure is part of the function that holds it. Scans
// src/**/*.ts with the TypeScript compiler's parser and python/**/*.py by indentation.
//
//   node scripts/check-functions.mjs [--top N] [root]
//     --top N  also print the N longest functions; root: the repository (default: this script's ../)
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { filesUnder, tsFiles } from './imports.mjs';

const MAX_LINES = 80;

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 0;
const root = path.resolve(args[0] ?? path.join(import.meta.dirname, '..'));
/** What a callback is passed to, short: `app.post`, `fs.rm().catch`. */
function callee(expr) {
  if (ts.isIdentifier(expr)) return expr.text;
  if (ts.isPropertyAccessExpression(expr)) return `${callee(expr.expression)}.${expr.name.text}`;
  if (ts.isCallExpression(expr)) return `${callee(expr.expression)}()`;
  if (expr.kind === ts.SyntaxKind.ThisKeyword) return 'this';
  return '…';
}

/** A function node's own name: declared, or what it is assigned to or passed to. */
function ownName(node) {
  const member = (n) => {
    const cls = n.parent;
    return cls && (ts.isClassDeclaration(cls) || ts.isClassExpression(cls)) && cls.name
      ? `${cls.name.text}.`
      : '';
  };
  if (ts.isConstructorDeclaration(node)) return `${member(node)}constructor`;
  if (node.name && 'text' in node.name) return `${member(node)}${node.name.text}`;
  const p = node.parent;
  if (ts.isVariableDeclaration(p) && ts.isIdentifier(p.name)) return p.name.text;
  if ((ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p)) && 'text' in p.name)
    return `${member(p)}${p.name.text}`;
  if (ts.isCallExpression(p)) return `(callback of ${callee(p.expression)})`;
  return '(anonymous)';
}

function isFunction(node) {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isFunctionExpression(node) ||
    ts.isArrowFunction(node) ||
    ts.isMethodDeclaration(node) ||
    ts.isConstructorDeclaration(node) ||
    ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node)
  );
}

/** Every function with a body in a .ts file: { line, name, length }; a nested one is "outer > inner". */
function tsFunctions(file) {
  const text = fs.readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out = [];
  const visit = (node, outer) => {
    let inside = outer;
    if (isFunction(node) && node.body) {
      const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      inside = [...outer, ownName(node)];
      out.push({ line: first + 1, name: inside.join(' > '), length: last - first + 1 });
    }
    ts.forEachChild(node, (child) => visit(child, inside));
  };
  visit(sf, []);
  return out;
}

/**
 * Every `def` in a .py file: { line, name, length }. A body is every line after the `def` that is
 * blank, a comment, inside a bracket or a triple-quoted string, or indented deeper than the
 * `def`; it ends at its last such line with code. Nested defs are part of the enclosing one.
 */
function pyFunctions(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  // Per line: its indentation when it starts a logical line with code there, else null
  // (blank, comment, or a continuation inside brackets or a triple-quoted string).
  const indent = [];
  let depth = 0;
  let triple = null;
  for (const line of lines) {
    const starts = depth === 0 && triple === null && line.trim() !== '' && !line.trim().startsWith('#');
    indent.push(starts ? line.length - line.trimStart().length : null);
    // Enough of Python's lexing to follow brackets and strings across lines.
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (triple) {
        if (line.startsWith(triple, i)) {
          i += 2;
          triple = null;
        } else if (c === '\\') i++;
        continue;
      }
      if (c === '#') break;
      if (line.startsWith('"""', i) || line.startsWith("'''", i)) {
        triple = line.slice(i, i + 3);
        i += 2;
      } else if (c === '"' || c === "'") {
        for (i++; i < line.length && line[i] !== c; i++) if (line[i] === '\\') i++;
      } else if ('([{'.includes(c)) depth++;
      else if (')]}'.includes(c)) depth = Math.max(0, depth - 1);
    }
  }
  const out = [];
  const scopes = []; // enclosing classes and defs: { indent, name }
  lines.forEach((line, i) => {
    if (indent[i] === null) return;
    while (scopes.length && scopes.at(-1).indent >= indent[i]) scopes.pop();
    const cls = /^\s*class\s+(\w+)/.exec(line);
    if (cls) scopes.push({ indent: indent[i], name: cls[1], cls: true });
    const m = /^(\s*)(?:async\s+)?def\s+(\w+)/.exec(line);
    if (!m) return;
    const own = m[1].length;
    const name = [...scopes.map((sc) => sc.name + (sc.cls ? '.' : ' > ')), m[2]].join('');
    scopes.push({ indent: own, name: m[2], cls: false });
    let last = i;
    for (let j = i + 1; j < lines.length; j++) {
      if (indent[j] === null) {
        if (lines[j].trim() !== '' && !lines[j].trim().startsWith('#')) last = j; // a continuation
        continue;
      }
      if (indent[j] <= own) break;
      last = j;
    }
    out.push({ line: i + 1, name, length: last - i + 1 });
  });
  return out;
}

const files = [
  ...tsFiles(path.join(root, 'src')).map((f) => [f, tsFunctions]),
  ...filesUnder(path.join(root, 'python'), '.py').map((f) => [f, pyFunctions]),
];

const all = files.flatMap(([file, scan]) =>
  scan(file).map((fn) => ({ file: path.relative(root, file), ...fn })),
);
all.sort((a, b) => b.length - a.length);
const shown = (f) => `${f.file}:${f.line} ${f.name} ${f.length} lines`;
const long = all.filter((f) => f.length > MAX_LINES);
if (top > 0) {
  console.log(`the ${top} longest:`);
  for (const f of all.slice(0, top)) console.log(`  ${shown(f)}`);
}
if (long.length) {
  for (const f of long) console.error(shown(f));
  console.error(`function length: ${long.length} function(s) over ${MAX_LINES} lines (split them up)`);
  process.exit(1);
}
console.log(`${all.length} functions in ${files.length} files, none over ${MAX_LINES} lines`);
