/**
 * A task kind's options read off its request body schema (TypeBox, i.e. JSON Schema): one flag
 * per property, named as the property in kebab-case, typed, with the schema's default and
 * description for --help. The body a command submits is built back from the same list, so a
 * field added to a job's schema is a flag the next build, and nothing here restates it.
 */
import type { TObject, TSchema } from '@sinclair/typebox';
import { compact } from './format.js';
import type { Option, OptionType } from './options.js';

/** An option that is one field of the request body. */
export interface FieldOption extends Option {
  field: string;
}

interface JsonSchema {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
}

export function kebab(field: string): string {
  return field.replaceAll('_', '-');
}

/** `null` in a union only says the field may be sent empty; a flag is either given or not. */
function withoutNull(s: JsonSchema): JsonSchema {
  const members = s.anyOf?.filter((m) => m.type !== 'null');
  if (!members) return s;
  const { anyOf: _anyOf, ...outer } = s;
  if (members.length === 1) return { ...(members[0] as JsonSchema), ...outer };
  const consts = members.map((m) => m.const);
  // A union of string literals is an enum; other unions are given as JSON.
  if (consts.every((c) => typeof c === 'string')) return { ...outer, type: 'string', enum: consts };
  return { ...outer, anyOf: members };
}

function typeOf(s: JsonSchema): OptionType {
  if (s.anyOf) return 'json';
  switch (s.type) {
    case 'string':
    case 'integer':
    case 'number':
    case 'boolean':
      return s.type;
    default:
      return 'json';
  }
}

function enumOf(s: JsonSchema): string[] | undefined {
  if (s.const !== undefined) return [String(s.const)];
  return s.enum?.map(String);
}

function boundsOf(s: JsonSchema): string | undefined {
  const n = (x: number | undefined, prefix = '') => (x === undefined ? '' : `${prefix}${compact(x)}`);
  const low = n(s.minimum) || n(s.exclusiveMinimum, '>');
  const high = n(s.maximum) || n(s.exclusiveMaximum, '<');
  if (low && high) return low.startsWith('>') ? `${low}, <=${high}` : `${low} to ${high}`;
  if (low) return low.startsWith('>') ? low : `>=${low}`;
  if (high) return `<=${high}`;
  return undefined;
}

function placeholderOf(field: string, o: Option): string | undefined {
  if (o.type === 'boolean') return undefined;
  const one =
    o.enum && o.enum.join('|').length <= 24
      ? o.enum.join('|')
      : o.enum
        ? 'NAME'
        : field.endsWith('_path')
          ? 'PATH'
          : field.endsWith('_id')
            ? 'ID'
            : { integer: 'N', number: 'X', string: 'TEXT', boolean: '', json: 'JSON' }[o.type];
  return o.list ? `${one}[,${one}…]` : one;
}

/** The option for one property of a body schema. */
export function fieldOption(field: string, schema: TSchema, required: boolean): FieldOption {
  const s = withoutNull(schema as JsonSchema);
  const list = s.type === 'array' && s.items !== undefined;
  // A list's items give its type; the list itself its default and description.
  const item = list ? withoutNull(s.items as JsonSchema) : s;
  const o: FieldOption = {
    field,
    name: kebab(field),
    type: typeOf(item),
    list: list || undefined,
    enum: enumOf(item),
    default: s.default,
    description: s.description,
    required: required && s.default === undefined,
    bounds: boundsOf(item),
  };
  o.placeholder = placeholderOf(field, o);
  return o;
}

/** Every property of `body`, in the schema's order. */
export function schemaOptions(body: TObject): FieldOption[] {
  const required = new Set(body.required ?? []);
  return Object.entries(body.properties).map(([field, schema]) =>
    fieldOption(field, schema, required.has(field)),
  );
}

/** The request body: the fields the command line gave, under their schema names. */
export function bodyFrom(
  options: FieldOption[],
  given: ReadonlyMap<string, unknown>,
): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const o of options) if (given.has(o.name)) body[o.field] = given.get(o.name);
  return body;
}
