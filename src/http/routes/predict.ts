/**
 * POST /api/v2/inference/predict (SPEC §2.3): one image (multipart upload, `image_base64` or a
 * data-root `path`) or one IQ chunk (`iq` upload, `iq_base64` or a `.iq`/`.dat` path), classified
 * at once by PredictService. JSON and multipart bodies are checked by the same schema here (the
 * multipart fields arrive as text, so numbers are read from it).
 */
import multipart from '@fastify/multipart';
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError, invalidField } from '../../domain/errors.js';
import { SLICING_REQUEST_FIELDS } from '../../signal/slicing.js';
import { createValidators } from '../../util/validators.js';
import type { ModelRef, PredictInput, PredictService } from '../../predict/predict-service.js';
import type { AppDeps } from '../deps.js';

const PredictBody = Type.Object({
  model: Type.Optional(
    Type.String({ minLength: 1, description: 'A trained model folder (config.yaml + best_model.onnx)' }),
  ),
  cfg_path: Type.Optional(
    Type.String({ minLength: 1, description: 'Model card, with weight_path instead of model' }),
  ),
  weight_path: Type.Optional(
    Type.String({ minLength: 1, description: '.onnx, or .pth with an .onnx beside it' }),
  ),
  image_base64: Type.Optional(
    Type.String({ minLength: 1, description: 'An encoded image (PNG, JPEG, …), base64' }),
  ),
  iq_base64: Type.Optional(
    Type.String({ minLength: 1, description: 'One IQ chunk: interleaved little-endian I,Q (dtype), base64' }),
  ),
  path: Type.Optional(
    Type.String({ minLength: 1, description: 'An image or an IQ chunk file in the data root' }),
  ),
  offset: Type.Optional(
    Type.Number({
      minimum: 0,
      maximum: 1e7,
      description:
        'With path naming a raw recording: classify the one slice that starts this many seconds in (duration_time × sample_rate samples), not the whole file as one chunk',
    }),
  ),
  top_k: Type.Integer({ minimum: 1, maximum: 100, default: 5 }),
  // An IQ chunk is drawn as the model's training images were: left out, these come from the
  // model card's signal section, then the spectrogram task's defaults.
  dtype: SLICING_REQUEST_FIELDS.dtype,
  stft_point: SLICING_REQUEST_FIELDS.stft_point,
  width: SLICING_REQUEST_FIELDS.width,
  height: SLICING_REQUEST_FIELDS.height,
  render: SLICING_REQUEST_FIELDS.render,
  sample_rate: SLICING_REQUEST_FIELDS.sample_rate,
  duration_time: SLICING_REQUEST_FIELDS.duration_time,
});
type PredictBody = Static<typeof PredictBody>;

const NUMERIC = new Set(['top_k', 'stft_point', 'width', 'height', 'offset', 'sample_rate', 'duration_time']);
const NUMBER_TEXT = /^\d+(\.\d*)?(e[+-]?\d+)?$/i;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

const ajv = createValidators('body');
const check = ajv.compile<PredictBody>(PredictBody);

function decode(field: string, text: string): Uint8Array {
  const s = text.replace(/\s+/g, '');
  if (!BASE64.test(s)) throw invalidField(field, 'is not base64');
  const bytes = Buffer.from(s, 'base64');
  if (bytes.length === 0) throw invalidField(field, 'decodes to nothing');
  return bytes;
}

export function predictRoutes(deps: AppDeps, predict: PredictService) {
  return async (app: FastifyInstance) => {
    const limit = deps.config.predict.bodyLimitBytes;
    await app.register(multipart, {
      limits: { fileSize: limit, files: 1, fields: 20, fieldSize: 64 * 1024 },
    });
    predictRoute(app, deps, predict, limit);
  };
}

/** An uploaded file: its form field (`image` or `iq`), its name and its bytes. */
interface Upload {
  field: string;
  filename: string;
  bytes: Uint8Array;
}

function predictRoute(app: FastifyInstance, deps: AppDeps, predict: PredictService, limit: number): void {
  app.post(
    '/api/v2/inference/predict',
    {
      bodyLimit: limit,
      // Checked in the handler for JSON and multipart alike; the schema is here for /docs.
      validatorCompiler: () => () => true,
      schema: {
        tags: ['inference'],
        summary: 'Classify one image or IQ chunk now (batched with concurrent requests for the same model)',
        consumes: ['application/json', 'multipart/form-data'],
        body: PredictBody,
      },
    },
    async (request, reply) => {
      const fields: Record<string, unknown> = {};
      const upload = request.isMultipart() ? await readForm(request, fields) : readJson(request, fields);
      const body = checkBody(fields);
      const ref = modelRef(body);
      const input = predictInput(body, upload);
      try {
        return await predict.predict(ref, input, body, body.top_k);
      } catch (err) {
        if (err instanceof AppError && err.code === 'rate_limited') {
          deps.metrics.rejected.inc({ reason: 'predict_busy' });
          reply.header('retry-after', '1');
        }
        throw err;
      }
    },
  );
}

/** A multipart form's text fields into `fields` (numbers read from their text); its file, if any. */
async function readForm(request: FastifyRequest, fields: Record<string, unknown>): Promise<Upload | null> {
  let upload: Upload | null = null;
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        upload = { field: part.fieldname, filename: part.filename, bytes: await part.toBuffer() };
      } else {
        const v = part.value;
        fields[part.fieldname] = NUMERIC.has(part.fieldname) && NUMBER_TEXT.test(String(v)) ? Number(v) : v;
      }
    }
  } catch (err) {
    throw formError(err);
  }
  return upload;
}

/** Limits (413 and the like) keep their status; a malformed form is the client's error. */
function formError(err: unknown): unknown {
  const code = (err as { code?: string }).code;
  if (code === 'FST_FILES_LIMIT')
    return new AppError('payload_too_large', 'send one file per request (an image or an IQ chunk)');
  if (code === 'FST_FIELDS_LIMIT' || code === 'FST_PARTS_LIMIT')
    return new AppError('payload_too_large', `too many form fields (${(err as Error).message})`);
  const status = (err as { statusCode?: number }).statusCode ?? 0;
  if (status >= 400 && status < 500) return err;
  return new AppError('bad_request', `the multipart body could not be read: ${(err as Error).message}`);
}

/** A JSON body's fields into `fields`; a JSON body carries no file. */
function readJson(request: FastifyRequest, fields: Record<string, unknown>): null {
  const b = request.body;
  if (typeof b !== 'object' || b === null || Array.isArray(b)) {
    throw new AppError('validation', 'body: must be a JSON object or a multipart form', {
      field: 'body',
    });
  }
  Object.assign(fields, b);
  return null;
}

/** The fields against PredictBody (defaults filled in), failing as Fastify's own validation does. */
function checkBody(fields: Record<string, unknown>): PredictBody {
  if (!check(fields)) {
    throw Object.assign(new Error('invalid body'), {
      statusCode: 400,
      validation: check.errors,
      validationContext: 'body',
    });
  }
  return fields as PredictBody;
}

/** The model: a trained model folder, or a model card with its weights. */
function modelRef(body: PredictBody): ModelRef {
  if (body.model !== undefined) {
    if (body.cfg_path !== undefined || body.weight_path !== undefined)
      throw invalidField('model', 'give either model or cfg_path with weight_path, not both');
    return { model: body.model };
  }
  if (body.cfg_path !== undefined && body.weight_path !== undefined) {
    return { cfg_path: body.cfg_path, weight_path: body.weight_path };
  }
  throw invalidField('model', 'is required: a trained model folder, or cfg_path with weight_path');
}

/** The one input given: an uploaded file, image_base64, iq_base64 or a path. */
function predictInput(body: PredictBody, upload: Upload | null): PredictInput {
  const given = [upload, body.image_base64, body.iq_base64, body.path].filter(
    (x) => x !== undefined && x !== null,
  );
  if (given.length !== 1) {
    throw invalidField(
      'image',
      given.length
        ? 'give exactly one input: an uploaded file, image_base64, iq_base64 or path'
        : 'is required: upload a file (field image or iq), or give image_base64, iq_base64 or path',
    );
  }
  if (body.offset !== undefined && body.path === undefined)
    throw invalidField('offset', 'is for a recording named by path (a slice of it is classified)');
  if (upload) {
    const iq = upload.field === 'iq' || /\.(iq|dat)$/i.test(upload.filename);
    if (upload.bytes.length === 0) throw invalidField(upload.field, 'the uploaded file is empty');
    return { kind: iq ? 'iq' : 'image', bytes: upload.bytes, field: upload.field };
  }
  if (body.image_base64 !== undefined) {
    return { kind: 'image', bytes: decode('image_base64', body.image_base64), field: 'image_base64' };
  }
  if (body.iq_base64 !== undefined) {
    return { kind: 'iq', bytes: decode('iq_base64', body.iq_base64), field: 'iq_base64' };
  }
  return { kind: 'path', path: body.path as string, offset: body.offset };
}
