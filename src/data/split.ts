// Stratified, seeded train/validation/test split.
//
// Identical across runs and platforms: items are ordered by their platform-independent key
// ('folder/file', compared by code unit), then each class's units are shuffled with an Rng
// seeded from (seed, class name). A unit is a group of items with the same group key (e.g. the
// pixel hash, so exact duplicates stay in one split) or a single item.
//
// Per class with N items: test gets round(N * test) items, validation round((N - nTest) * val),
// train the rest. Units are dealt in shuffled order to test, then validation, then train, so a
// duplicate group can overshoot a target by its size minus one.

import { Rng } from '../util/rng.js';
import { byCodeUnit } from './dataset.js';

export interface SplitItem {
  path: string;
  label: number;
  rel?: string;
}

export interface SplitFractions {
  /** Fraction of each class held out for test (default 0.2). */
  test: number;
  /** Fraction of the remainder (after test) held out for validation (default 0.2). */
  val: number;
}

export interface SplitOptions {
  seed: number;
  test?: number;
  val?: number;
  /** Group key per item (same length as items); items with equal keys go to the same split. */
  groups?: readonly (string | number | null | undefined)[];
}

export type SplitName = 'train' | 'val' | 'test';
export const SPLIT_NAMES: readonly SplitName[] = ['train', 'val', 'test'];

/** JSON-serialisable record of a split, stored in the model's metadata. */
export interface SplitDescription {
  seed: number;
  fractions: SplitFractions;
  classes: string[];
  /** counts[split][className] = number of items. */
  counts: Record<SplitName, Record<string, number>>;
  /** Item keys ('folder/file') per split, sorted. */
  files: Record<SplitName, string[]>;
  /** Groups of exact duplicates (keys), each kept in one split. */
  duplicateGroups: string[][];
}

export interface SplitResult {
  train: number[];
  val: number[];
  test: number[];
  description: SplitDescription;
}

/** The key of an item used for ordering and in metadata: rel if given, else the path with '/' separators. */
export function itemKey(it: SplitItem): string {
  return it.rel ?? it.path.replace(/\\/g, '/');
}

/** FNV-1a 32-bit of a string (UTF-16 code units): a platform-independent seed mixer. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Mix integers into one 32-bit seed (order-sensitive). */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h ^= p >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

function checkFraction(name: string, v: number): number {
  if (!(v >= 0 && v < 1)) throw new RangeError(`split: ${name} fraction must be in [0, 1), got ${v}`);
  return v;
}

export function stratifiedSplit(items: readonly SplitItem[], classes: readonly string[], opts: SplitOptions): SplitResult {
  const fractions: SplitFractions = { test: checkFraction('test', opts.test ?? 0.2), val: checkFraction('val', opts.val ?? 0.2) };
  const seed = opts.seed >>> 0;
  if (opts.groups && opts.groups.length !== items.length) throw new RangeError(`split: groups has ${opts.groups.length} entries for ${items.length} items`);
  for (const it of items) {
    if (!Number.isInteger(it.label) || it.label < 0 || it.label >= classes.length) throw new RangeError(`split: label ${it.label} of ${itemKey(it)} is not a class index (0..${classes.length - 1})`);
  }

  const keys = items.map(itemKey);
  const order = items.map((_, i) => i).sort((a, b) => byCodeUnit(keys[a], keys[b]) || a - b);

  // Units: groups of item indices with the same group key, in order of their first member.
  const unitOf = new Map<string, number[]>();
  const units: number[][] = [];
  for (const i of order) {
    const g = opts.groups?.[i];
    if (g === null || g === undefined) {
      units.push([i]);
      continue;
    }
    const k = String(g);
    const u = unitOf.get(k);
    if (u) u.push(i);
    else {
      const nu = [i];
      unitOf.set(k, nu);
      units.push(nu);
    }
  }

  // A unit's class is the class of its first (lowest-key) member; a group whose members disagree
  // on the label (same pixels in two class folders) still stays together.
  const perClass: number[][][] = classes.map(() => []);
  for (const u of units) perClass[items[u[0]].label].push(u);

  const assign = new Int8Array(items.length); // 0 train, 1 val, 2 test
  for (let c = 0; c < classes.length; c++) {
    const cu = perClass[c];
    const n = cu.reduce((s, u) => s + u.length, 0);
    const nTest = Math.round(n * fractions.test);
    const nVal = Math.round((n - nTest) * fractions.val);
    new Rng(mixSeed(seed, fnv1a(classes[c]))).shuffle(cu);
    let t = 0;
    let v = 0;
    for (const u of cu) {
      let s = 0;
      if (t < nTest) {
        s = 2;
        t += u.length;
      } else if (v < nVal) {
        s = 1;
        v += u.length;
      }
      for (const i of u) assign[i] = s;
    }
  }

  const out: Record<SplitName, number[]> = { train: [], val: [], test: [] };
  for (const i of order) out[SPLIT_NAMES[assign[i]]].push(i);
  const counts = { train: {}, val: {}, test: {} } as Record<SplitName, Record<string, number>>;
  const files = { train: [], val: [], test: [] } as Record<SplitName, string[]>;
  for (const s of SPLIT_NAMES) {
    for (const name of classes) counts[s][name] = 0;
    for (const i of out[s]) {
      counts[s][classes[items[i].label]]++;
      files[s].push(keys[i]);
    }
  }
  const duplicateGroups = units.filter((u) => u.length > 1).map((u) => u.map((i) => keys[i]));
  return {
    train: out.train,
    val: out.val,
    test: out.test,
    description: { seed, fractions, classes: classes.slice(), counts, files, duplicateGroups },
  };
}

/**
 * Rebuild index lists from a stored description (e.g. to evaluate on a model's own test split).
 * Items are matched by key; keys in the description that are not among the items are returned in
 * `missing`, and items not named in it in `unassigned`.
 */
export function splitFromDescription(
  items: readonly SplitItem[],
  desc: Pick<SplitDescription, 'files'>,
): { train: number[]; val: number[]; test: number[]; missing: string[]; unassigned: number[] } {
  const index = new Map<string, number>();
  items.forEach((it, i) => index.set(itemKey(it), i));
  const res = { train: [] as number[], val: [] as number[], test: [] as number[], missing: [] as string[], unassigned: [] as number[] };
  const seen = new Uint8Array(items.length);
  for (const s of SPLIT_NAMES) {
    for (const k of desc.files[s] ?? []) {
      const i = index.get(k);
      if (i === undefined) res.missing.push(k);
      else {
        res[s].push(i);
        seen[i] = 1;
      }
    }
    res[s].sort((a, b) => a - b);
  }
  for (let i = 0; i < items.length; i++) if (!seen[i]) res.unassigned.push(i);
  return res;
}

/**
 * The first `limit` indices of each class, in the given order (labels < 0 are skipped): deterministic
 * subsets for scarce-data experiments, so a GAN and a classifier given the same limit see the same images.
 */
export function firstPerClass(indices: readonly number[], labels: ArrayLike<number>, classes: number, limit: number): number[] {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`the per-class limit must be a positive integer, got ${limit}`);
  const taken = new Array<number>(classes).fill(0);
  return indices.filter((i) => {
    const k = labels[i];
    if (k < 0 || taken[k] >= limit) return false;
    taken[k]++;
    return true;
  });
}
