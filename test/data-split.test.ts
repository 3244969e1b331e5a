// Stratified seeded split: proportions per class, determinism, duplicate groups, metadata.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareDataset } from '../src/data/prepare.js';
import { type SplitItem, fnv1a, mixSeed, splitFromDescription, stratifiedSplit } from '../src/data/split.js';

const CLASSES = ['a', 'b', 'c'];
function makeItems(counts: number[]): SplitItem[] {
  const items: SplitItem[] = [];
  counts.forEach((n, c) => {
    for (let i = 0; i < n; i++) items.push({ path: `/data/${CLASSES[c]}/img_${String(i).padStart(3, '0')}.png`, rel: `${CLASSES[c]}/img_${String(i).padStart(3, '0')}.png`, label: c });
  });
  return items;
}

describe('stratifiedSplit', () => {
  it('holds out round(N*test) and round((N-test)*val) per class; partitions all items', () => {
    const items = makeItems([100, 37, 9]);
    const s = stratifiedSplit(items, CLASSES, { seed: 7, test: 0.2, val: 0.25 });
    expect(s.description.counts).toEqual({
      train: { a: 60, b: 22, c: 5 },
      val: { a: 20, b: 8, c: 2 }, // b: round(30 * 0.25) = 8
      test: { a: 20, b: 7, c: 2 }, // b: round(37 * 0.2) = 7
    });
    const all = [...s.train, ...s.val, ...s.test].sort((x, y) => x - y);
    expect(all).toEqual(items.map((_, i) => i));
    expect(s.description.fractions).toEqual({ test: 0.2, val: 0.25 });
    expect(s.description.seed).toBe(7);
  });

  it('is deterministic, independent of input order and of path separators, and changes with the seed', () => {
    const items = makeItems([40, 30, 20]);
    const a = stratifiedSplit(items, CLASSES, { seed: 1 });
    const b = stratifiedSplit(items, CLASSES, { seed: 1 });
    expect(b).toEqual(a);
    // Reversed input, Windows-style paths without rel: the same files land in the same splits.
    const rev = items.slice().reverse().map((it) => ({ path: it.path.replace(/\//g, '\\').replace(/^\\data\\/, ''), label: it.label }));
    const r = stratifiedSplit(rev, CLASSES, { seed: 1 });
    expect(r.description.files).toEqual(a.description.files);
    const c = stratifiedSplit(items, CLASSES, { seed: 2 });
    expect(c.description.files.test).not.toEqual(a.description.files.test);
    expect(c.description.counts).toEqual(a.description.counts);
  });

  it('golden: a fixed seed gives a fixed split on every platform', () => {
    const items = makeItems([10, 10, 10]);
    const s = stratifiedSplit(items, CLASSES, { seed: 12345, test: 0.2, val: 0.25 });
    // Pinned: a change here means the Rng, the mixing or the dealing changed, and old model
    // metadata no longer reproduces. Only update it deliberately.
    expect(s.test).toEqual(GOLDEN_TEST);
    expect(s.val).toEqual(GOLDEN_VAL);
    expect(fnv1a('crack')).toBe(0x3d749c61);
    expect(mixSeed(1, 2)).toBe(mixSeed(1, 2));
    expect(mixSeed(1, 2)).not.toBe(mixSeed(2, 1));
  });

  it('keeps duplicate groups in one split and records them', () => {
    const items = makeItems([50, 50, 0]);
    const groups: (string | null)[] = items.map(() => null);
    // Five groups of three inside class a, one pair across classes a and b.
    for (let g = 0; g < 5; g++) for (let k = 0; k < 3; k++) groups[g * 10 + k] = `dup${g}`;
    groups[45] = 'cross';
    groups[50 + 45] = 'cross';
    for (let seed = 0; seed < 20; seed++) {
      const s = stratifiedSplit(items, CLASSES, { seed, groups });
      const where = new Map<number, string>();
      for (const name of ['train', 'val', 'test'] as const) for (const i of s[name]) where.set(i, name);
      for (let g = 0; g < 5; g++) {
        const sp = new Set([0, 1, 2].map((k) => where.get(g * 10 + k)));
        expect(sp.size).toBe(1);
      }
      expect(where.get(45)).toBe(where.get(95));
      expect(s.description.duplicateGroups).toHaveLength(6);
      // Overshoot of the targets is bounded by a group size minus one.
      expect(Math.abs(s.description.counts.test.a - 10)).toBeLessThanOrEqual(2);
    }
    const s = stratifiedSplit(items, CLASSES, { seed: 3, groups });
    expect(s.description.duplicateGroups[0]).toEqual(['a/img_000.png', 'a/img_001.png', 'a/img_002.png']);
  });

  it('description is JSON-serialisable and restores the same index lists', () => {
    const items = makeItems([20, 15, 12]);
    const s = stratifiedSplit(items, CLASSES, { seed: 9 });
    const desc = JSON.parse(JSON.stringify(s.description));
    expect(desc).toEqual(s.description);
    const back = splitFromDescription(items, desc);
    expect(back.train).toEqual([...s.train].sort((x, y) => x - y));
    expect(back.val).toEqual([...s.val].sort((x, y) => x - y));
    expect(back.test).toEqual([...s.test].sort((x, y) => x - y));
    expect(back.missing).toEqual([]);
    expect(back.unassigned).toEqual([]);
    const fewer = splitFromDescription(items.slice(1), desc);
    expect(fewer.missing).toEqual([items[0].rel]);
    const more = splitFromDescription([...items, { path: '/x/new.png', rel: 'a/new.png', label: 0 }], desc);
    expect(more.unassigned).toEqual([items.length]);
  });

  it('rejects bad fractions and labels', () => {
    const items = makeItems([3, 3, 3]);
    expect(() => stratifiedSplit(items, CLASSES, { seed: 1, test: 1 })).toThrow(RangeError);
    expect(() => stratifiedSplit(items, CLASSES, { seed: 1, val: -0.1 })).toThrow(RangeError);
    expect(() => stratifiedSplit([{ path: 'x', label: 5 }], CLASSES, { seed: 1 })).toThrow(/not a class index/);
  });
});

describe('prepareDataset (scan + decode + pixel-hash groups + split)', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), 'wgsl-nn-split-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('exact pixel duplicates (even in different formats) share a split', async () => {
    const root = path.join(tmp, 'ds');
    for (const cls of ['pit', 'scratch']) {
      await mkdir(path.join(root, cls), { recursive: true });
      for (let i = 0; i < 12; i++) {
        const px = Buffer.alloc(10 * 10, (i * 17 + (cls === 'pit' ? 3 : 101)) & 255);
        const img = sharp(px, { raw: { width: 10, height: 10, channels: 1 } });
        await writeFile(path.join(root, cls, `${cls}_${i}.png`), await img.png().toBuffer());
      }
    }
    // pit_3 duplicated as a TIFF and as another PNG name.
    const dup = Buffer.alloc(100, (3 * 17 + 3) & 255);
    await writeFile(path.join(root, 'pit', 'zz_copy.tif'), await sharp(dup, { raw: { width: 10, height: 10, channels: 1 } }).tiff().toBuffer());
    await writeFile(path.join(root, 'pit', 'pit_3_again.png'), await sharp(dup, { raw: { width: 10, height: 10, channels: 1 } }).png().toBuffer());
    for (let seed = 0; seed < 8; seed++) {
      const p = await prepareDataset(root, 'multiclass', { size: 8, seed, test: 0.25, val: 0.25 });
      expect(p.dataset.classes).toEqual(['pit', 'scratch']);
      expect(p.labels.length).toBe(26);
      expect(p.split.description.duplicateGroups).toEqual([['pit/pit_3.png', 'pit/pit_3_again.png', 'pit/zz_copy.tif']]);
      const files = p.split.description.files;
      const splitOf = (k: string): string => (['train', 'val', 'test'] as const).find((s) => files[s].includes(k))!;
      expect(splitOf('pit/zz_copy.tif')).toBe(splitOf('pit/pit_3.png'));
      expect(splitOf('pit/pit_3_again.png')).toBe(splitOf('pit/pit_3.png'));
      expect(p.cache.length).toBe(26);
      expect(p.skipped).toEqual([]);
    }
  });
});

// Computed once with the implementation of this commit (seed 12345, counts 10/10/10, test 0.2, val 0.25).
const GOLDEN_TEST = [2, 8, 12, 17, 25, 27];
const GOLDEN_VAL = [3, 6, 13, 16, 21, 22];
