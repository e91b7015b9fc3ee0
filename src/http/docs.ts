/**
 * The API's documents: the OpenAPI description built from every route's schemas, served as
 * /openapi.json, as Swagger UI at /docs, and as the reference's /redoc (a plain page rendered
 * here: the reference loads ReDoc from a CDN, and this service needs no network).
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { VERSION } from '../config.js';
import { renderReferencePage, type OpenApiDoc } from './reference-page.js';

/**
 * The document plugin and its three routes, as one plugin (fastify-plugin, so OpenAPI sees the
 * routes registered after it at the app's root).
 */
export const apiDocs = fp(
  async (app: FastifyInstance, o: { secured: boolean }) => registerDocs(app, o.secured),
  {
    name: 'api-docs',
  },
);

/** Registers the document plugin (before the routes, so it sees them) and its three routes. */
async function registerDocs(app: FastifyInstance, secured: boolean): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'RFUAV Model Service',
        version: VERSION,
        description:
          'Train, evaluate and serve RF drone-identification models. Tasks are durable and scheduled onto GPU/CPU slots.',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      },
      security: secured ? [{ bearer: [] }] : [],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  let referencePage: string | null = null;
  app.get('/redoc', { schema: { hide: true } }, async (_request, reply) => {
    referencePage ??= renderReferencePage(app.swagger() as OpenApiDoc);
    return reply.type('text/html; charset=utf-8').send(referencePage);
  });
}
