/**
 * GET /redoc: the API reference as one page, rendered here from the service's own OpenAPI
 * document. The reference (FastAPI) serves ReDoc there, which loads its script from a CDN; this
 * service must work with no network beyond itself, so the page is plain HTML with no script:
 * every route with its summary, path and query parameters, body fields (type, default, range,
 * description) and response codes. /docs has the interactive Swagger UI, /openapi.json the document.
 */

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  description?: string;
  nullable?: boolean;
}

interface Operation {
  summary?: string;
  tags?: string[];
  parameters?: { name: string; in: string; required?: boolean; schema?: Schema; description?: string }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { description?: string }>;
}

export interface OpenApiDoc {
  info?: { title?: string; version?: string; description?: string };
  paths?: Record<string, Record<string, Operation>>;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** "integer", "string | null", "one of a, b", "array of string". */
export function typeOf(s: Schema | undefined): string {
  if (!s) return '';
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return `one of ${s.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  if (s.anyOf) return [...new Set(s.anyOf.map(typeOf))].join(' | ');
  if (s.type === 'array') return `array of ${typeOf(s.items) || 'any'}`;
  const t = Array.isArray(s.type) ? s.type.join(' | ') : (s.type ?? 'any');
  return s.nullable ? `${t} | null` : t;
}

function rules(s: Schema): string {
  const out: string[] = [];
  if (s.minimum !== undefined) out.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) out.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined) out.push(`≤ ${s.maximum}`);
  if (s.minLength !== undefined && s.minLength > 1) out.push(`length ≥ ${s.minLength}`);
  if (s.maxLength !== undefined) out.push(`length ≤ ${s.maxLength}`);
  if (s.pattern) out.push(`matches ${s.pattern}`);
  return out.join(', ');
}

function fieldRows(schema: Schema): string {
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties ?? {})
    .map(
      ([name, f]) =>
        `<tr><td><code>${esc(name)}</code>${required.has(name) ? ' <b>required</b>' : ''}</td>` +
        `<td>${esc(typeOf(f))}</td><td>${f.default !== undefined ? `<code>${esc(JSON.stringify(f.default))}</code>` : ''}</td>` +
        `<td>${esc(rules(f))}</td><td>${esc(f.description ?? '')}</td></tr>`,
    )
    .join('');
}

function operationHtml(method: string, route: string, op: Operation): string {
  const id = `${method}-${route}`.replace(/[^A-Za-z0-9]+/g, '-');
  const params = (op.parameters ?? [])
    .map(
      (p) =>
        `<tr><td><code>${esc(p.name)}</code> <i>${esc(p.in)}</i>${p.required ? ' <b>required</b>' : ''}</td>` +
        `<td>${esc(typeOf(p.schema))}</td><td>${p.schema?.default !== undefined ? `<code>${esc(JSON.stringify(p.schema.default))}</code>` : ''}</td>` +
        `<td>${esc(p.schema ? rules(p.schema) : '')}</td><td>${esc(p.description ?? p.schema?.description ?? '')}</td></tr>`,
    )
    .join('');
  const body = op.requestBody?.content?.['application/json']?.schema;
  const table = (rows: string) =>
    `<table><tr><th>field</th><th>type</th><th>default</th><th>rule</th><th>description</th></tr>${rows}</table>`;
  const codes = Object.keys(op.responses ?? {}).join(', ');
  return (
    `<section id="${id}"><h3><span class="m ${method}">${method.toUpperCase()}</span> <code>${esc(route)}</code></h3>` +
    (op.summary ? `<p>${esc(op.summary)}</p>` : '') +
    (params ? `<h4>Parameters</h4>${table(params)}` : '') +
    (body?.properties ? `<h4>Body (JSON)</h4>${table(fieldRows(body))}` : '') +
    (codes ? `<p class="codes">Responses: ${esc(codes)}</p>` : '') +
    `</section>`
  );
}

export function renderReferencePage(doc: OpenApiDoc): string {
  const byTag = new Map<string, string[]>();
  const index = new Map<string, string[]>();
  for (const [route, methods] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(methods)) {
      const tag = op.tags?.[0] ?? 'other';
      (byTag.get(tag) ?? byTag.set(tag, []).get(tag))?.push(operationHtml(method, route, op));
      const id = `${method}-${route}`.replace(/[^A-Za-z0-9]+/g, '-');
      (index.get(tag) ?? index.set(tag, []).get(tag))?.push(
        `<li><a href="#${id}">${method.toUpperCase()} ${esc(route)}</a></li>`,
      );
    }
  }
  const title = esc(doc.info?.title ?? 'API');
  const nav = [...index].map(([tag, items]) => `<h2>${esc(tag)}</h2><ul>${items.join('')}</ul>`).join('');
  const main = [...byTag]
    .map(([tag, ops]) => `<h2 id="tag-${esc(tag)}">${esc(tag)}</h2>${ops.join('')}`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title} — API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:0;display:flex;color:#222}
nav{width:19rem;height:100vh;overflow:auto;position:sticky;top:0;background:#f6f7f9;padding:1rem;font-size:.85rem;box-sizing:border-box}
nav ul{list-style:none;padding-left:.5rem}nav a{color:#234;text-decoration:none}
main{flex:1;padding:1rem 2rem;max-width:70rem}
table{border-collapse:collapse;margin:.3rem 0 1rem;font-size:.85rem}th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}code{background:#f4f4f4;padding:0 .2rem}section{border-top:1px solid #eee;padding-top:.5rem}
.m{display:inline-block;min-width:4rem;text-align:center;color:#fff;border-radius:3px;font-size:.8rem;padding:.1rem .3rem}
.get{background:#2f7d32}.post{background:#1565c0}.delete{background:#c62828}.put,.patch{background:#6a1b9a}.codes{color:#666;font-size:.85rem}
</style></head><body>
<nav><p><b>${title}</b> ${esc(doc.info?.version ?? '')}</p><p><a href="/docs">Swagger UI</a> · <a href="/openapi.json">openapi.json</a></p>${nav}</nav>
<main><h1>${title} <small>${esc(doc.info?.version ?? '')}</small></h1><p>${esc(doc.info?.description ?? '')}</p>${main}</main>
</body></html>`;
}
