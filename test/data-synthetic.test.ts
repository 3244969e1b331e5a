// Synthetic surfaces: determinism, layout on disk readable by scanDataset, class signatures.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanDataset } from '../src/data/dataset.js';
import { loadGray } from '../src/data/images.js';
import { SYNTHETIC_CLASSES, generateSynthetic, syntheticDataset, syntheticSample } from '../src/data/synthetic.js';
import { Rng } from '../src/util/rng.js';

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'wgsl-nn-synth-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Fraction of pixels further than `t` from the image median: how much of the image is "defect". */
function outlierFraction(img: Float32Array, t: number): number {
  const sorted = Float32Array.from(img).sort();
  const med = sorted[sorted.length >> 1];
  let n = 0;
  for (const v of img) if (Math.abs(v - med) > t) n++;
  return n / img.length;
}

describe('syntheticSample', () => {
  it('is deterministic from the rng, in [0, 1], and differs between seeds', () => {
    for (const c of SYNTHETIC_CLASSES) {
      const a = syntheticSample(c, 32, new Rng(5));
      const b = syntheticSample(c, 32, new Rng(5));
      const d = syntheticSample(c, 32, new Rng(6));
      expect(a.length).toBe(32 * 32);
      expect(Array.from(a)).toEqual(Array.from(b));
      expect(Array.from(a)).not.toEqual(Array.from(d));
      expect(Math.min(...a)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...a)).toBeLessThanOrEqual(1);
    }
    expect(() => syntheticSample('dent', 32, new Rng(1))).toThrow(/unknown synthetic class/);
  });

  it('defects stand out from the texture; clean images have no strong outliers', () => {
    const mean = (c: string): number => {
      let s = 0;
      for (let i = 0; i < 40; i++) s += outlierFraction(syntheticSample(c, 48, new Rng(1000 + i)), 0.12);
      return s / 40;
    };
    const clean = mean('clean');
    expect(clean).toBeLessThan(0.02);
    for (const c of ['crack', 'scratch', 'spot', 'inclusion', 'patch']) expect(mean(c)).toBeGreaterThan(clean + 0.01);
    // Patches cover a large area, scratches and cracks a thin one.
    expect(mean('patch')).toBeGreaterThan(mean('scratch'));
  });
});

describe('generateSynthetic', () => {
  it('writes a class-per-folder dataset that scanDataset reads; same pixels as syntheticDataset', async () => {
    const out = path.join(tmp, 'multi');
    const r = await generateSynthetic({ outDir: out, perClass: 4, size: 24, seed: 11 });
    expect(r).toEqual({ classes: [...SYNTHETIC_CLASSES], count: 24 });
    const ds = await scanDataset(out, 'multiclass');
    expect(ds.classes).toEqual(r.classes);
    expect(ds.items.length).toBe(24);
    expect(ds.items[0].rel).toBe('clean/clean_00000.png');
    const mem = syntheticDataset({ perClass: 4, size: 24, seed: 11 });
    expect(mem.classes).toEqual(r.classes);
    expect(Array.from(mem.labels)).toEqual(ds.items.map((i) => i.label));
    for (let i = 0; i < ds.items.length; i += 5) {
      const g = await loadGray(ds.items[i].path);
      expect([g.width, g.height]).toEqual([24, 24]);
      let maxErr = 0;
      for (let k = 0; k < g.data.length; k++) maxErr = Math.max(maxErr, Math.abs(g.data[k] - mem.images[i][k]));
      expect(maxErr).toBeLessThanOrEqual(0.5 / 255 + 1e-6); // 8-bit quantisation only
    }
  });

  it('is deterministic: regenerating gives identical files, and stale own files are replaced', async () => {
    const a = path.join(tmp, 'det-a');
    const b = path.join(tmp, 'det-b');
    await generateSynthetic({ outDir: a, perClass: 5, size: 16, seed: 3 });
    await generateSynthetic({ outDir: b, perClass: 5, size: 16, seed: 3 });
    for (const c of SYNTHETIC_CLASSES) {
      const fa = (await readdir(path.join(a, c))).sort();
      expect(fa).toEqual((await readdir(path.join(b, c))).sort());
      for (const f of fa) {
        const ga = await loadGray(path.join(a, c, f));
        const gb = await loadGray(path.join(b, c, f));
        expect(Array.from(ga.data)).toEqual(Array.from(gb.data));
      }
    }
    // Regenerate fewer per class: older generator files go, a user file stays.
    await writeFile(path.join(a, 'spot', 'mine.txt'), 'keep me');
    await generateSynthetic({ outDir: a, perClass: 2, size: 16, seed: 3 });
    expect((await readdir(path.join(a, 'spot'))).sort()).toEqual(['mine.txt', 'spot_00000.png', 'spot_00001.png']);
    // Another seed gives other pixels.
    const c = path.join(tmp, 'det-c');
    await generateSynthetic({ outDir: c, perClass: 1, size: 16, seed: 4 });
    const g1 = await loadGray(path.join(b, 'crack', 'crack_00000.png'));
    const g2 = await loadGray(path.join(c, 'crack', 'crack_00000.png'));
    expect(Array.from(g1.data)).not.toEqual(Array.from(g2.data));
  });

  it('binary: good/ holds clean images, defect/ cycles through the defect kinds', async () => {
    const out = path.join(tmp, 'bin');
    const r = await generateSynthetic({ outDir: out, perClass: 10, size: 16, seed: 2, task: 'binary' });
    expect(r).toEqual({ classes: ['good', 'defect'], count: 20 });
    const ds = await scanDataset(out, 'binary');
    expect(ds.classes).toEqual(['good', 'defect']);
    expect(ds.items.filter((i) => i.label === 0).every((i) => i.folder === 'good')).toBe(true);
    expect(ds.items.filter((i) => i.label === 1).length).toBe(10);
    const mem = syntheticDataset({ perClass: 10, size: 16, seed: 2, task: 'binary' });
    expect(mem.classes).toEqual(['good', 'defect']);
    expect(Array.from(mem.labels)).toEqual([...new Array(10).fill(1), ...new Array(10).fill(0)]); // folder order: defect, good
  });
});
