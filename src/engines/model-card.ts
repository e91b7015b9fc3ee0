/** The model card (config.yaml) written by training; evaluation and inference take it as cfg_path. */
import fs from 'node:fs/promises';
import { parse } from 'yaml';
import { badPath, invalidField } from '../domain/errors.js';
import { isSupportedModel, SUPPORTED_MODELS, type ModelName } from '../domain/models.js';
import { asSignalParams, type SignalParams } from '../signal/params.js';

export interface ModelCard {
  model: ModelName;
  num_classes: number;
  image_size: number;
  /** Class name → output index. */
  class_names: Record<string, number>;
  /** Class names by output index; outputs no class was trained on are `unused_<i>`. */
  labels: string[];
  /** How the training images were rendered from raw IQ, when the card says (training copies it). */
  signal: SignalParams | null;
}

const MAX_CARD_BYTES = 1024 * 1024;

/** Reads and checks a card; problems are 4xx errors naming `field`. */
export async function readModelCard(file: string, field: string, shown: string): Promise<ModelCard> {
  let text: string;
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw badPath(`${field}: '${shown}' is not a file`, { field });
    if (stat.size > MAX_CARD_BYTES) throw invalidField(field, `'${shown}' is too large for a model card`);
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT')
      throw badPath(`${field}: '${shown}' does not exist`, { field });
    throw err;
  }
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw invalidField(field, `'${shown}' is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw invalidField(
      field,
      `'${shown}' is not a model card (expected a mapping with model, num_classes, class_names)`,
    );
  }
  const card = doc as Record<string, unknown>;
  if (!isSupportedModel(card.model)) {
    throw invalidField(
      field,
      `'${shown}' names model '${String(card.model)}', which is not one of ${SUPPORTED_MODELS.join(', ')}`,
    );
  }
  const n = card.num_classes;
  if (!Number.isInteger(n) || (n as number) < 2) {
    throw invalidField(field, `'${shown}' has no valid num_classes (an integer ≥ 2)`);
  }
  const size = card.image_size ?? 224;
  if (!Number.isInteger(size) || (size as number) < 32 || (size as number) > 4096) {
    throw invalidField(field, `'${shown}' has an invalid image_size`);
  }
  let names: Record<string, number>;
  if (Array.isArray(card.class_names)) {
    names = Object.fromEntries(card.class_names.map((c, i) => [String(c), i]));
  } else if (typeof card.class_names === 'object' && card.class_names !== null) {
    names = Object.create(null) as Record<string, number>;
    for (const [k, v] of Object.entries(card.class_names)) {
      if (!Number.isInteger(v)) throw invalidField(field, `'${shown}': class_names.${k} is not an index`);
      names[k] = v as number;
    }
  } else {
    throw invalidField(field, `'${shown}' has no class_names`);
  }
  const labels: string[] = new Array<string>(n as number);
  for (const [k, v] of Object.entries(names)) {
    if (v < 0 || v >= (n as number) || labels[v] !== undefined) {
      throw invalidField(
        field,
        `'${shown}': class_names must map each class to a distinct index 0–${(n as number) - 1}`,
      );
    }
    labels[v] = k;
  }
  // Fewer names than outputs: a head trained wider than its class folders (as the reference
  // allows); the outputs without a name are unused.
  for (let i = 0; i < (n as number); i++) labels[i] ??= `unused_${i}`;
  return {
    model: card.model,
    num_classes: n as number,
    image_size: size as number,
    class_names: names,
    labels,
    signal: asSignalParams(card.signal),
  };
}
