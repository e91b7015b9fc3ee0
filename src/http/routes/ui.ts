import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';

/** The dashboard's files, shipped in the package beside dist/ (no build step, nothing external). */
export const WEB_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../web');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The pages the dashboard has; each is the same shell, which draws the page from its URL. */
const PAGES = [
  /^\/ui\/?$/,
  /^\/ui\/tasks\/?$/,
  /^\/ui\/tasks\/[A-Za-z0-9_.-]{1,64}\/?$/,
  /^\/ui\/compare\/?$/,
  /^\/ui\/submit\/?$/,
  /^\/ui\/submit\/[a-z0-9_]{1,64}\/?$/,
  /^\/ui\/explorer\/?$/,
];

/**
 * The dashboard runs only its own scripts and talks only to this service: no inline script, no
 * other origin, no framing. Pictures may be blob: URLs (images fetched with the token); inline
 * style attributes carry bar widths and colours.
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The files under web/, read once at start: a request can only ever name one of them (no path
 * from the URL reaches the file system).
 */
function loadAssets(): Map<string, { body: Buffer; type: string }> {
  const out = new Map<string, { body: Buffer; type: string }>();
  const walk = (dir: string, prefix: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full, `${prefix}${entry.name}/`);
      else {
        const type = TYPES[path.extname(entry.name)];
        if (type) out.set(`${prefix}${entry.name}`, { body: fs.readFileSync(full), type });
      }
    }
  };
  walk(WEB_ROOT, '');
  return out;
}

/** GET /ui/… : the dashboard's pages and its scripts and styles. */
export function uiRoutes() {
  return async (app: FastifyInstance) => {
    const assets = loadAssets();
    const shell = assets.get('index.html');
    if (!shell) throw new Error(`the dashboard is missing: no index.html in ${WEB_ROOT}`);
    const send = (reply: FastifyReply, a: { body: Buffer; type: string }, cache: string) =>
      reply
        .type(a.type)
        .header('cache-control', cache)
        .header('x-content-type-options', 'nosniff')
        .header('content-security-policy', CSP)
        .send(a.body);

    app.get<{ Params: { '*': string } }>(
      '/ui/assets/*',
      { schema: { hide: true } },
      async (request, reply) => {
        const a = assets.get(request.params['*']);
        if (!a || request.params['*'] === 'index.html')
          return reply.code(404).type('text/plain').send('no such file');
        return send(reply, a, 'no-cache');
      },
    );
    const page = async (request: { url: string }, reply: FastifyReply) => {
      const pathname = request.url.split('?')[0] ?? '';
      if (!PAGES.some((p) => p.test(pathname))) {
        return reply
          .code(404)
          .type('text/html; charset=utf-8')
          .send('<!doctype html><title>Not found</title><p>No such page. <a href="/ui/">Dashboard</a></p>');
      }
      return send(reply, shell, 'no-cache');
    };
    app.get('/ui', { schema: { hide: true } }, page);
    app.get('/ui/*', { schema: { hide: true } }, page);
  };
}
