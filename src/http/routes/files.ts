import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { AppError, badPath, notFound } from '../../domain/errors.js';
import type { PathSandbox } from '../../util/sandbox.js';
import type { AppDeps } from '../deps.js';
import { ErrorSchema } from '../schemas.js';

const MAX_ENTRIES = 2000;

const FilesQuery = Type.Object({
  path: Type.String({
    default: '.',
    maxLength: 1024,
    description: 'a folder inside the data root ("." = the root)',
  }),
});

const Entry = Type.Object({
  name: Type.String(),
  path: Type.String({ description: 'relative to the data root, as requests name it' }),
  type: Type.Union([Type.Literal('dir'), Type.Literal('file')]),
  size: Type.Union([Type.Integer(), Type.Null()]),
  modified: Type.String(),
});

/** What /files/content serves, by extension: pictures a page can show and outputs it can read. */
const CONTENT_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.bmp': 'image/bmp',
  '.json': 'application/json; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.log': 'text/plain; charset=utf-8',
  '.yaml': 'text/plain; charset=utf-8',
  '.yml': 'text/plain; charset=utf-8',
};
const MAX_CONTENT_BYTES = 64 * 1024 * 1024;

const ContentQuery = Type.Object({
  path: Type.String({ minLength: 1, maxLength: 1024, description: 'a file inside the data root' }),
});

/**
 * GET /api/v2/files?path= — what one folder of the data root holds (read-only; the dashboard's
 * path picker). Through the same sandbox as every request path: nothing outside the root is
 * listed, whatever links inside it point at; hidden entries (".rfuav-nodes") are left out.
 */
export function fileRoutes({ paths }: AppDeps) {
  return async (app: FastifyInstance) => {
    contentRoute(app, paths);
    app.get<{ Querystring: Static<typeof FilesQuery> }>(
      '/api/v2/files',
      {
        schema: {
          tags: ['files'],
          summary: 'List a folder of the data root (folders first, then files, by name)',
          querystring: FilesQuery,
          response: {
            200: Type.Object({ path: Type.String(), entries: Type.Array(Entry), truncated: Type.Boolean() }),
            400: ErrorSchema,
            404: ErrorSchema,
          },
        },
      },
      async (request) => {
        const dir = paths.resolve(request.query.path || '.', 'path');
        const st = paths.stat(dir);
        if (!st) throw notFound(`path: '${request.query.path}' does not exist in the data root`);
        if (!st.isDirectory())
          throw badPath(`path: '${request.query.path}' is a file, not a folder`, { field: 'path' });
        const all = (await fs.readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.'));
        all.sort((a, b) => a.name.localeCompare(b.name));
        const entries = [];
        for (const e of all.slice(0, MAX_ENTRIES)) {
          const at = path.join(dir, e.name);
          // `dir` is a real path inside the root: only a symbolic link can lead elsewhere, so only
          // a link goes through the sandbox again (a link out of the root is not shown).
          let real = at;
          if (e.isSymbolicLink()) {
            try {
              real = paths.resolve(at, 'path');
            } catch {
              continue;
            }
          }
          const s = await fs.stat(real).catch(() => null);
          if (!s || !(s.isDirectory() || s.isFile())) continue;
          entries.push({
            name: e.name,
            path: paths.display(at),
            type: s.isDirectory() ? ('dir' as const) : ('file' as const),
            size: s.isFile() ? s.size : null,
            modified: s.mtime.toISOString(),
          });
        }
        entries.sort((a, b) =>
          a.type === b.type ? a.name.localeCompare(b.name) : a.type === 'dir' ? -1 : 1,
        );
        return { path: paths.display(dir), entries, truncated: all.length > MAX_ENTRIES };
      },
    );
  };
}

/**
 * GET /api/v2/files/content?path= — one file of the data root: a picture (png, jpg, gif, webp,
 * bmp) or a text output (json, csv, txt, log, yaml), as the dashboard shows annotated images and
 * reads predictions.json. Other kinds are refused (no SVG or HTML: nothing served here can run
 * script), the response forbids sniffing and carries a CSP of its own, and it is read-only.
 */
function contentRoute(app: FastifyInstance, paths: PathSandbox): void {
  app.get<{ Querystring: Static<typeof ContentQuery> }>(
    '/api/v2/files/content',
    {
      schema: {
        tags: ['files'],
        summary:
          'One image or text output of the data root (png, jpg, gif, webp, bmp, json, csv, txt, log, yaml)',
        querystring: ContentQuery,
        produces: Object.values(CONTENT_TYPES),
        response: { 400: ErrorSchema, 404: ErrorSchema, 413: ErrorSchema },
      },
    },
    async (request, reply) => {
      const shown = request.query.path;
      const file = paths.resolve(shown, 'path');
      const st = paths.stat(file);
      if (!st) throw notFound(`path: '${shown}' does not exist in the data root`);
      if (!st.isFile()) throw badPath(`path: '${shown}' is not a file`, { field: 'path' });
      const type = CONTENT_TYPES[path.extname(file).toLowerCase()];
      if (!type) {
        throw badPath(
          `path: '${shown}' is not a file this route serves (${Object.keys(CONTENT_TYPES).join(' ')})`,
          { field: 'path' },
        );
      }
      if (st.size > MAX_CONTENT_BYTES)
        throw new AppError('payload_too_large', `path: '${shown}' is over ${MAX_CONTENT_BYTES} bytes`);
      return (
        reply
          .type(type)
          .header('cache-control', 'private, no-cache')
          .header('last-modified', st.mtime.toUTCString())
          .header('x-content-type-options', 'nosniff')
          .header('content-security-policy', "default-src 'none'; sandbox")
          .header('content-length', String(st.size))
          // Streamed: a large picture is never held whole in memory, however many are asked for.
          .send(createReadStream(file))
      );
    },
  );
}
