import fs from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { badPath, notFound } from '../../domain/errors.js';
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

/**
 * GET /api/v2/files?path= — what one folder of the data root holds (read-only; the dashboard's
 * path picker). Through the same sandbox as every request path: nothing outside the root is
 * listed, whatever links inside it point at; hidden entries (".rfuav-nodes") are left out.
 */
export function fileRoutes({ paths }: AppDeps) {
  return async (app: FastifyInstance) => {
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
