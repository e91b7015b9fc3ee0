/**
 * The spectrogram explorer's routes (the dashboard's /ui/explorer), read-only and sandboxed like
 * every request path:
 * - GET /api/v2/signal/info?path=<recording>&model=<model folder>: its length, and how it is cut
 *   and drawn (from the model card's signal section when a model is named);
 * - GET /api/v2/signal/slice?path=&offset=&width=&height=…: the slice that starts `offset` seconds
 *   in, drawn by the service's STFT kernel as a PNG of width × height (the screen's size).
 * The slice's class is POST /api/v2/inference/predict with the same `path` and `offset`.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { SignalExplorer } from '../../predict/explorer.js';
import { SLICING_REQUEST_FIELDS } from '../../signal/slicing.js';
import { ErrorSchema } from '../schemas.js';

const { width: _w, height: _h, ...CUT_FIELDS } = SLICING_REQUEST_FIELDS;

const InfoQuery = Type.Object({
  path: Type.String({
    minLength: 1,
    maxLength: 1024,
    description: 'A raw IQ recording (.iq, .dat) in the data root',
  }),
  model: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 1024,
      description: 'A trained model folder: its model card supplies the fields left out',
    }),
  ),
  ...SLICING_REQUEST_FIELDS,
});

const SliceQuery = Type.Object({
  path: InfoQuery.properties.path,
  model: InfoQuery.properties.model,
  offset: Type.Number({
    minimum: 0,
    maximum: 1e7,
    default: 0,
    description: 'Seconds from the start of the recording',
  }),
  ...CUT_FIELDS,
  width: Type.Integer({
    minimum: 16,
    maximum: 2048,
    default: 1024,
    description: 'Width of the PNG (pixels)',
  }),
  height: Type.Integer({
    minimum: 16,
    maximum: 2048,
    default: 768,
    description: 'Height of the PNG (pixels)',
  }),
});

const Signal = Type.Object({
  sample_rate: Type.Number(),
  stft_point: Type.Integer(),
  duration_time: Type.Number(),
  ratio: Type.Integer(),
  dtype: Type.String(),
  width: Type.Integer(),
  height: Type.Integer(),
  render: Type.String(),
});

const RecordingView = Type.Object({
  path: Type.String(),
  bytes: Type.Integer(),
  modified: Type.String(),
  samples: Type.Integer(),
  duration_s: Type.Number(),
  slice_samples: Type.Integer(),
  slices: Type.Integer(),
  signal: Signal,
  from_card: Type.Array(Type.String()),
  model: Type.Union([
    Type.Object({
      path: Type.String(),
      model: Type.String(),
      labels: Type.Array(Type.String()),
      image_size: Type.Integer(),
    }),
    Type.Null(),
  ]),
});

export function signalRoutes(explorer: SignalExplorer) {
  return async (app: FastifyInstance) => {
    app.get<{ Querystring: Static<typeof InfoQuery> }>(
      '/api/v2/signal/info',
      {
        schema: {
          tags: ['signal'],
          summary:
            'A raw recording: its length and how it is sliced (from a model card when a model is named)',
          querystring: InfoQuery,
          response: { 200: RecordingView, 400: ErrorSchema, 404: ErrorSchema },
        },
      },
      async (request) => explorer.describe(request.query),
    );
    app.get<{ Querystring: Static<typeof SliceQuery> }>(
      '/api/v2/signal/slice',
      {
        schema: {
          tags: ['signal'],
          summary: 'One slice of a raw recording, from offset for duration_time, drawn as a PNG',
          querystring: SliceQuery,
          produces: ['image/png'],
          response: { 400: ErrorSchema, 404: ErrorSchema },
        },
      },
      async (request, reply) => {
        const { offset, width, height, ...rest } = request.query;
        const png = await explorer.slicePng(rest, offset, { width, height });
        return reply.type('image/png').header('cache-control', 'private, max-age=300').send(png);
      },
    );
  };
}
