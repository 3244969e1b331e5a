// The per-adapter cache of measured kernel variant choices, and applying it to the registry.
//
// `npm run autotune` (bench/autotune.ts, measuring in bench/tuner.ts) times each variant per shape
// bucket and saves the fastest here; `loadTuned(engine)` re-applies the choices for this engine's
// adapter without measuring (the CLI, the Inspector and the anomaly detector call it at start-up).
// File: $WGSL_NN_TUNE_CACHE, else ~/.cache/wgsl-nn/variants.json.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Engine } from '../gpu/engine.js';
import { ALL_SHAPES, adapterKey, kernels } from './registry.js';
import './index.js'; // every family registered, so cached choices of known variants apply

/** op -> shape bucket -> value. */
export type PerBucket<T> = Record<string, Record<string, T>>;

/** One adapter's measured choices. */
export interface TuningEntry {
  /** The adapter in words (engine.describe()). */
  adapter: string;
  /** ISO time of the last measurement. */
  updated: string;
  /** The variant chosen per op and shape bucket (ALL_SHAPES for ops without buckets). */
  choices: PerBucket<string>;
  /** Median ms per call of every variant measured (null: failed or rejected), per op and bucket. */
  timings: PerBucket<Record<string, number | null>>;
  /** The shapes each bucket was measured on. */
  shapes: PerBucket<string>;
}

export interface TuningCache {
  version: 2;
  /** By adapterKey(engine). */
  adapters: Record<string, TuningEntry>;
}

/** The cache file in use: $WGSL_NN_TUNE_CACHE, else ~/.cache/wgsl-nn/variants.json. */
export function defaultCacheFile(): string {
  return process.env.WGSL_NN_TUNE_CACHE || join(homedir(), '.cache', 'wgsl-nn', 'variants.json');
}

const isObject = (x: unknown): x is Record<string, unknown> => !!x && typeof x === 'object' && !Array.isArray(x);

/**
 * Reads the cache (an empty one when the file is missing or unreadable). A version-1 file (one choice
 * per op) is read as the ALL_SHAPES bucket of each op.
 */
export function readTuningCache(file = defaultCacheFile()): TuningCache {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return { version: 2, adapters: {} };
  }
  if (!isObject(data) || !isObject(data.adapters)) return { version: 2, adapters: {} };
  if (data.version === 2) return data as unknown as TuningCache;
  if (data.version !== 1) return { version: 2, adapters: {} };
  const adapters: Record<string, TuningEntry> = {};
  for (const [key, e] of Object.entries(data.adapters)) {
    if (!isObject(e) || !isObject(e.choices)) continue;
    const choices: PerBucket<string> = {};
    for (const [op, v] of Object.entries(e.choices)) if (typeof v === 'string') choices[op] = { [ALL_SHAPES]: v };
    adapters[key] = { adapter: String(e.adapter ?? key), updated: String(e.updated ?? ''), choices, timings: {}, shapes: {} };
  }
  return { version: 2, adapters };
}

/** Writes the cache (through a temporary file and a rename, so a concurrent reader never sees half a file). */
export function writeTuningCache(data: TuningCache, file = defaultCacheFile()): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`);
  renameSync(tmp, file);
}

/** Merges `update` into the entry of adapter `key` (per op and bucket) and writes the file. */
export function saveTuned(key: string, update: TuningEntry, file = defaultCacheFile()): TuningEntry {
  const cache = readTuningCache(file);
  const prev = cache.adapters[key];
  const merge = <T>(a: PerBucket<T> | undefined, b: PerBucket<T>): PerBucket<T> => {
    const out: PerBucket<T> = { ...a };
    for (const [op, buckets] of Object.entries(b)) out[op] = { ...out[op], ...buckets };
    return out;
  };
  const entry: TuningEntry = {
    adapter: update.adapter,
    updated: update.updated,
    choices: merge(prev?.choices, update.choices),
    timings: merge(prev?.timings, update.timings),
    shapes: merge(prev?.shapes, update.shapes),
  };
  cache.adapters[key] = entry;
  writeTuningCache(cache, file);
  return entry;
}

/**
 * Applies the choices cached for this engine's adapter (kernels.setTuned per op and bucket) without
 * measuring. Entries for ops or variants that are no longer registered are skipped. Returns what was
 * applied (op -> bucket -> variant).
 */
export function loadTuned(engine: Engine, cacheFile?: string): PerBucket<string> {
  const key = adapterKey(engine);
  const entry = readTuningCache(cacheFile ?? defaultCacheFile()).adapters[key];
  const applied: PerBucket<string> = {};
  if (!isObject(entry?.choices)) return applied;
  const known = new Set(kernels.opNames());
  for (const [op, buckets] of Object.entries(entry.choices)) {
    if (!known.has(op) || !isObject(buckets)) continue;
    const variants = kernels.variants(op);
    for (const [bucket, variant] of Object.entries(buckets)) {
      if (typeof variant !== 'string' || !variants.includes(variant)) continue;
      kernels.setTuned(key, op, variant, bucket);
      (applied[op] ??= {})[bucket] = variant;
    }
  }
  return applied;
}
