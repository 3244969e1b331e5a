// The model-directory format shared by every kind of model:
//   model.json          { "format": "<kind>/<version>", ... }: what the model is and how it was made
//   <name>.safetensors  one or more weights files (PyTorch names), e.g. model.safetensors for the
//                       classifier, generator.safetensors + discriminator.safetensors for a GAN
// Each file is written atomically and model.json last, so a reader never sees new JSON with old
// weights. The kinds (src/cnn/model-dir.ts: 'wgsl-nn-classifier/1', a GAN: 'wgsl-nn-gan/1') add their
// own fields to model.json and build their models from it.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WgslNnError } from './gpu/errors.js';
import type { StateDict } from './nn/modules.js';
import { readSafetensors, writeFileAtomic, writeSafetensors } from './nn/serialize.js';

export class ModelFormatError extends WgslNnError {}

export const MODEL_JSON = 'model.json';

const WEIGHTS_NAME = /^[A-Za-z0-9_-]+$/;

/** <dir>/<name>.safetensors; a name other than letters, digits, '_' and '-' is refused. */
export function weightsPath(dir: string, name: string): string {
  if (!WEIGHTS_NAME.test(name)) throw new ModelFormatError(`weights name '${name}' must use only letters, digits, '_' and '-'`);
  return join(dir, `${name}.safetensors`);
}

/**
 * Writes a model directory: each state dict of `weights` as <name>.safetensors (its metadata records the
 * format), then model.json holding `format` followed by `meta`'s fields.
 */
export function writeModelDir(dir: string, format: string, weights: Record<string, StateDict>, meta: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, state] of Object.entries(weights)) writeModelWeights(dir, format, name, state);
  const json = JSON.stringify({ format, ...meta }, null, 2) + '\n';
  writeFileAtomic(join(dir, MODEL_JSON), [new TextEncoder().encode(json)]);
}

/**
 * model.json of `dir`, checked to be of `format` (or one of several); clear errors for a missing directory or
 * file, bad JSON, or another format.
 */
export function readModelJson<M extends { format: string }>(dir: string, format: string | readonly string[]): M {
  const formats: readonly string[] = typeof format === 'string' ? [format] : format;
  const expected = formats.join(' or ');
  const path = join(dir, MODEL_JSON);
  if (!existsSync(dir)) throw new ModelFormatError(`model directory not found: ${dir}`);
  if (!existsSync(path)) throw new ModelFormatError(`not a model directory (no ${MODEL_JSON}): ${dir}`);
  let meta: M;
  try {
    meta = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ModelFormatError(`corrupt ${MODEL_JSON} in ${dir}: ${(e as Error).message}`);
  }
  const found = (meta as { format?: unknown } | null)?.format;
  if (typeof found !== 'string' || !formats.includes(found))
    throw new ModelFormatError(
      typeof found === 'string' && found.startsWith('wgsl-nn-')
        ? `${path}: this is a '${found}' model directory; expected format ${expected}`
        : `${path}: unknown format '${String(found)}' (expected ${expected})`,
    );
  return meta;
}

/** Writes one weights file `<name>.safetensors` of a model directory (atomically, as writeSafetensors does). */
export function writeModelWeights(dir: string, format: string, name: string, state: StateDict): void {
  writeSafetensors(weightsPath(dir, name), state, { format });
}

/** The state dict in <name>.safetensors of a model directory. */

export function readModelWeights(dir: string, name = 'model'): StateDict {
  return readSafetensors(weightsPath(dir, name)).tensors;
}
