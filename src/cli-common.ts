// What every wgsl-nn command shares: option parsers and the engine's lifetime.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { isImageFile } from './data/images.js';
import type { DiffAugmentPolicy } from './nn/functional.js';
import { Engine } from './gpu/engine.js';
import { loadTuned } from './kernels/tuning-cache.js';

export const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
};

export const nonNegativeInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be an integer >= 0`);
  return n;
};

export const num = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number`);
  return n;
};

export const integerInRange = (name: string, min: number, max = Number.MAX_SAFE_INTEGER) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}`);
  return n;
};

/** A comma list of integers in min..max, e.g. `--memory-size 16384,8192`. */
export const integerList = (name: string, min: number, max = Number.MAX_SAFE_INTEGER) => (v: string): number[] =>
  v.split(',').map((x) => {
    const n = Number(x.trim());
    if (x.trim() === '' || !Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} takes ${max === Number.MAX_SAFE_INTEGER ? (min === 1 ? 'positive integers' : `integers >= ${min}`) : `integers from ${min} to ${max}`} (comma list), got '${x}'`);
    return n;
  });

export const numberInRange = (name: string, min: number, max: number) => (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !(n >= min && n <= max)) throw new InvalidArgumentError(`${name} must be a number in [${min}, ${max}]`);
  return n;
};

/** Runs `fn` with a fresh engine (tuned kernel variants applied) and destroys it afterwards. */
export async function withEngine<T>(fn: (e: Engine) => Promise<T>): Promise<T> {
  const engine = await Engine.create();
  loadTuned(engine); // kernel variants measured fastest on this adapter by `npm run autotune`, if any
  try {
    return await fn(engine);
  } finally {
    engine.destroy();
  }
}

/** The command line as run, recorded in model.json. */
export function commandLine(): string {
  return `wgsl-nn ${process.argv.slice(2).join(' ')}`;
}

const DIFF_AUGMENT_OPS: readonly DiffAugmentPolicy[] = ['color', 'translation', 'cutout'];

/** `--diff-augment color,translation,cutout` (or `none`). */
export function diffAugmentList(v: string): DiffAugmentPolicy[] {
  if (v === 'none' || v === '') return [];
  const ops = v.split(',').map((s) => s.trim());
  for (const op of ops)
    if (!DIFF_AUGMENT_OPS.includes(op as DiffAugmentPolicy))
      throw new InvalidArgumentError(`unknown DiffAugment op '${op}' (use ${DIFF_AUGMENT_OPS.join(', ')} or none)`);
  return ops as DiffAugmentPolicy[];
}

/** Image files named on the command line: files as given, folders by their image files (sorted). */
export function collectImages(inputs: string[]): string[] {
  const out: string[] = [];
  for (const p of inputs) {
    if (existsSync(p) && statSync(p).isDirectory()) {
      for (const f of readdirSync(p).sort()) if (isImageFile(f)) out.push(join(p, f));
    } else out.push(p);
  }
  return out;
}
