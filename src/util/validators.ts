/**
 * The one factory for JSON Schema validators (Ajv), so every check of a request follows the same
 * rules. `body`: JSON bodies — no type coercion ("5" is not 5), schema defaults filled in, fields
 * a closed schema does not know dropped, every error reported. `text`: query strings and path
 * parameters, which only ever arrive as text, so types are coerced.
 */
import Ajv from 'ajv';

export type Validators = InstanceType<typeof Ajv.default>;

export function createValidators(kind: 'body' | 'text'): Validators {
  const ajv = new Ajv.default({
    coerceTypes: kind === 'text',
    useDefaults: true,
    removeAdditional: true,
    allErrors: true,
  });
  // Documentation-only keyword the schemas carry for /docs.
  ajv.addKeyword('example');
  return ajv;
}
