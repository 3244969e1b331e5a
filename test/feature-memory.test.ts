// The anomaly detector's feature memory (src/anomaly/feature-memory.ts) against float64 CPU references:
// the backbone's features (conv, ReLU, max-pool, conv, ReLU, neighbourhood mean: src/kernels/reference),
// the nearest-neighbour distances (brute force), and the split of training images between the memory and
// the edge profile. End to end (a trained detector with a memory) in test/anomaly.test.ts.
//
// Tolerances: features 1e-4 relative to their largest magnitude (float32 convolutions of <= 288 terms);
// distances 1e-4 relative to |q|^2 + |m|^2 (the GPU computes |q|^2 + |m|^2 - 2 q.m, whose rounding
// scales with those norms; the kernel itself is tested in test/nearest.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeatureMemory, memoryAndReference, reduceByBlocks } from '../src/anomaly/feature-memory.js';
import type { WorkImage } from '../src/anomaly/patches.js';
import type { Engine } from '../src/gpu/engine.js';
import { conv2dRef } from '../src/kernels/reference/conv2d.js';
import { maxPool2dRef } from '../src/kernels/reference/maxpool2d.js';
import { roundToHalf, toHalfBits } from '../src/nn/half.js';
import type { StateDict } from '../src/nn/modules.js';
import { decodeSafetensors, encodeSafetensors } from '../src/nn/serialize.js';
import { Rng } from '../src/util/rng.js';
import { randArray, rng, testEngine } from './helpers.js';

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine?.destroy());

/** A classifier-like state dict: conv 1 -> 4 and 4 -> 6 channels, 3x3 (plus a layer the memory ignores). */
function classifierState(r: Rng): StateDict {
  const e = (shape: number[], scale = 0.5) => ({ shape, dtype: 'F32' as const, data: randArray(r, shape.reduce((a, b) => a * b, 1), scale) });
  return { '0.weight': e([4, 1, 3, 3]), '0.bias': e([4], 0.1), '3.weight': e([6, 4, 3, 3]), '3.bias': e([6], 0.1), '6.weight': e([8, 6, 3, 3]), '6.bias': e([8], 0.1) };
}

function workImage(r: Rng, width: number, height: number): WorkImage {
  const data = new Float32Array(width * height);
  for (let i = 0; i < data.length; i++) data[i] = 0.5 + 0.3 * Math.sin(i * 0.37) * r.uniform(0.5, 1) + r.uniform(-0.1, 0.1);
  return { width, height, data, originalWidth: width, originalHeight: height };
}

/**
 * The features of features(), in float64 on the CPU: standardise, conv, ReLU, pool, conv, ReLU; with
 * `layers` 3, pool, conv, ReLU again, that map sampled bilinearly at each stride-2 cell's centre and
 * appended ('deep': that map alone, on its own grid); then the neighbourhood mean.
 */
function featuresRef(img: WorkImage, s: StateDict, neighbourhood: number, layers: 2 | 3 | 'deep' = 2): { h: number; w: number; data: Float64Array } {
  const n = img.data.length;
  const mean = img.data.reduce((a, v) => a + v, 0) / n;
  const std = Math.max(Math.sqrt(Math.max(img.data.reduce((a, v) => a + v * v, 0) / n - mean * mean, 0)), 1e-2);
  const z = Float64Array.from(img.data, (v) => (v - mean) / std);
  const p = { stride: [1, 1] as [number, number], padding: [0, 0] as [number, number] };
  const [H, W] = [img.height, img.width];
  const c1 = conv2dRef(z, [1, 1, H, W], s['0.weight'].data as Float32Array, [4, 1, 3, 3], s['0.bias'].data as Float32Array, p, 'relu');
  const pooled = maxPool2dRef(c1, [1, 4, H - 2, W - 2], { kernel: [2, 2], stride: [2, 2] });
  const [, , ph, pw] = pooled.shape;
  const c2 = conv2dRef(pooled.y, pooled.shape, s['3.weight'].data as Float32Array, [6, 4, 3, 3], s['3.bias'].data as Float32Array, p, 'relu');
  let [h, w] = [ph - 2, pw - 2];
  // Per cell: its c2 features, then (3 layers) the deep ones. cell(y, x)[c] for c < C.
  let C = 6;
  let cell = (y: number, x: number, c: number) => c2[(c * h + y) * w + x];
  if (layers !== 2) {
    const pooled2 = maxPool2dRef(c2, [1, 6, h, w], { kernel: [2, 2], stride: [2, 2] });
    const [, , qh, qw] = pooled2.shape;
    const c3 = conv2dRef(pooled2.y, pooled2.shape, s['6.weight'].data as Float32Array, [8, 6, 3, 3], s['6.bias'].data as Float32Array, p, 'relu');
    const [h3, w3] = [qh - 2, qw - 2];
    // A deep cell j covers stride-2 cells 2j .. 2j + 5: centre 2j + 2.5, so cell i sits at (i - 2.5) / 2.
    const at = (i: number, n: number) => Math.min(Math.max((i - 2.5) / 2, 0), n - 1);
    const sample = (c: number, ty: number, tx: number) => {
      const y0 = Math.floor(ty);
      const x0 = Math.floor(tx);
      const y1 = Math.min(y0 + 1, h3 - 1);
      const x1 = Math.min(x0 + 1, w3 - 1);
      const v = (yy: number, xx: number) => c3[(c * h3 + yy) * w3 + xx];
      const fy = ty - y0;
      const fx = tx - x0;
      return (v(y0, x0) * (1 - fx) + v(y0, x1) * fx) * (1 - fy) + (v(y1, x0) * (1 - fx) + v(y1, x1) * fx) * fy;
    };
    const shallow = cell;
    if (layers === 'deep') {
      cell = (y, x, c) => c3[(c * h3 + y) * w3 + x];
      [h, w, C] = [h3, w3, 8];
    } else {
      cell = (y, x, c) => (c < 6 ? shallow(y, x, c) : sample(c - 6, at(y, h3), at(x, w3)));
      C = 14;
    }
  }
  const r = (neighbourhood - 1) / 2;
  const out = new Float64Array(h * w * C);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < C; c++) {
        let sum = 0;
        let cnt = 0;
        for (let yy = Math.max(0, y - r); yy <= Math.min(h - 1, y + r); yy++)
          for (let xx = Math.max(0, x - r); xx <= Math.min(w - 1, x + r); xx++) {
            sum += cell(yy, xx, c);
            cnt++;
          }
        out[(y * w + x) * C + c] = sum / cnt;
      }
  return { h, w, data: out };
}

/** The GPU features equal the float64 reference's: same grid, 1e-4 relative to the largest magnitude (not zeros). */
function expectFeatures(got: { h: number; w: number; data: Float32Array }, exp: { h: number; w: number; data: Float64Array }): void {
  expect([got.h, got.w]).toEqual([exp.h, exp.w]);
  const scale = Math.max(...exp.data.map(Math.abs));
  expect(scale).toBeGreaterThan(0.1); // not a test on zeros
  let err = 0;
  got.data.forEach((v, i) => (err = Math.max(err, Math.abs(v - exp.data[i]))));
  expect(err / scale).toBeLessThan(1e-4);
}

/** The chunks of an encoded file as one byte array. */
function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.byteLength, 0));
  let o = 0;
  for (const c of chunks) (out.set(c, o), (o += c.byteLength));
  return out;
}

describe('FeatureMemory', () => {
  it('reduceByBlocks: block means, a last partial block the mean of what it holds', () => {
    // 5 x 3 image, factor 2: blocks [0..1] x [0..1], [2..3] x [0..1], [4] x [0..1]; then the last row alone.
    const data = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    const r = reduceByBlocks({ width: 5, height: 3, data }, 2);
    expect([r.width, r.height]).toEqual([3, 2]);
    expect(Array.from(r.data)).toEqual([(1 + 2 + 6 + 7) / 4, (3 + 4 + 8 + 9) / 4, (5 + 10) / 2, (11 + 12) / 2, (13 + 14) / 2, 15]);
  });

  it('with downscale 2 computes the features of the 2 x 2 block-mean image (float64 reference), and maps back to full size', async () => {
    const state = classifierState(rng(31));
    const m = FeatureMemory.fromClassifier(state, { backbone: 'test', size: 8, neighbourhood: 3, downscale: 2 }, engine, 'deep');
    try {
      expect(m.config.downscale).toBe(2);
      const img = workImage(rng(32), 91, 77);
      // The reduced image in float64, block by block (46 x 39: the last column and row are partial blocks).
      const [w2, h2] = [Math.ceil(91 / 2), Math.ceil(77 / 2)];
      const reduced = new Float32Array(w2 * h2);
      for (let y = 0; y < h2; y++)
        for (let x = 0; x < w2; x++) {
          const cells: number[] = [];
          for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]]) if (2 * y + dy < 77 && 2 * x + dx < 91) cells.push(img.data[(2 * y + dy) * 91 + 2 * x + dx]);
          reduced[y * w2 + x] = cells.reduce((a, v) => a + v, 0) / cells.length;
        }
      const got = await m.features(img);
      const exp = featuresRef({ ...img, width: w2, height: h2, data: reduced }, state, 3, 'deep');
      expectFeatures(got, exp);
      await m.fill([img], new Rng(4));
      expect((await m.distanceMap(img)).length).toBe(91 * 77);
      // A small image is reduced, then padded to the third block's 18 x 18 field.
      expect((await m.distanceMap(workImage(rng(33), 20, 30))).length).toBe(600);
      const copy = new FeatureMemory(JSON.parse(JSON.stringify(m.config)), engine);
      copy.loadStateDict(await m.stateDict());
      expect(Array.from(await copy.distanceMap(img))).toEqual(Array.from(await m.distanceMap(img)));
      copy.dispose();
    } finally {
      m.dispose();
    }
    expect(() => new FeatureMemory({ backbone: 'test', channels: [4, 6], size: 4, neighbourhood: 1, downscale: 1.5 }, engine)).toThrow(/downscale must be a positive integer, got 1.5/);
  });

  it("holds the third block's features alone on its stride-4 grid with layers 'deep' (float64 reference), and reloads from its config", async () => {
    const state = classifierState(rng(21));
    const m = FeatureMemory.fromClassifier(state, { backbone: 'test', size: 8, neighbourhood: 3 }, engine, 'deep');
    try {
      expect(m.config.channels).toEqual([4, 6, 8]);
      expect(m.config.deepOnly).toBe(true);
      expect(m.channels).toBe(8);
      const img = workImage(rng(22), 45, 38);
      const got = await m.features(img);
      const exp = featuresRef(img, state, 3, 'deep');
      // 45 x 38 -> conv 43 x 36 -> pool 21 x 18 -> conv 19 x 16 -> pool 9 x 8 -> conv 7 x 6.
      expect([got.h, got.w]).toEqual([6, 7]);
      expectFeatures(got, exp);
      await m.fill([img, workImage(rng(23), 40, 40)], new Rng(3));
      const bank = (await m.bank.value.toArray()) as Float32Array;
      expect(bank.length).toBe(8 * 8);
      const map = await m.distanceMap(img);
      expect(map.length).toBe(45 * 38);
      expect(map.every(Number.isFinite)).toBe(true);
      const copy = new FeatureMemory(JSON.parse(JSON.stringify(m.config)), engine);
      copy.loadStateDict(await m.stateDict());
      expect(copy.channels).toBe(8);
      expect(Array.from(await copy.distanceMap(img))).toEqual(Array.from(map));
      copy.dispose();
    } finally {
      m.dispose();
    }
    expect(() => new FeatureMemory({ backbone: 'test', channels: [4, 6], size: 4, neighbourhood: 1, deepOnly: true }, engine)).toThrow(/third block alone .* needs three channel counts/);
  });

  it('computes the backbone features of a whole image as the float64 reference (odd sizes, neighbourhoods 1 and 3)', async () => {
    const state = classifierState(rng(1));
    for (const neighbourhood of [1, 3]) {
      const m = FeatureMemory.fromClassifier(state, { backbone: 'test', size: 4, neighbourhood }, engine);
      try {
        const img = workImage(rng(2), 27, 19);
        const got = await m.features(img);
        const exp = featuresRef(img, state, neighbourhood);
        expectFeatures(got, exp);
      } finally {
        m.dispose();
      }
    }
  });

  it('appends the third block\'s features with three layers (float64 reference), and saves them by name', async () => {
    const state = classifierState(rng(11));
    const m = FeatureMemory.fromClassifier(state, { backbone: 'test', size: 8, neighbourhood: 3 }, engine, 3);
    try {
      expect(m.config.channels).toEqual([4, 6, 8]);
      expect(m.channels).toBe(14);
      const img = workImage(rng(12), 41, 37);
      const got = await m.features(img);
      const exp = featuresRef(img, state, 3, 3);
      const deep = exp.data.filter((_, i) => i % 14 >= 6);
      expect(Math.max(...deep.map(Math.abs))).toBeGreaterThan(0.1); // the deep features are not zeros
      expectFeatures(got, exp);
      await m.fill([img], new Rng(2));
      const saved = await m.stateDict();
      expect(Object.keys(saved).sort()).toEqual(['backbone.0.bias', 'backbone.0.weight', 'backbone.3.bias', 'backbone.3.weight', 'bank', 'deep.1.bias', 'deep.1.weight']);
      const copy = new FeatureMemory(m.config, engine);
      copy.loadStateDict(saved);
      expect(Array.from(await copy.distanceMap(img))).toEqual(Array.from(await m.distanceMap(img)));
      copy.dispose();
      // A small image is padded to the third block's 18 x 18 field.
      expect((await m.distanceMap(workImage(rng(13), 9, 20))).length).toBe(180);
    } finally {
      m.dispose();
    }
    const { '6.weight': _w, '6.bias': _b, ...twoBlocks } = state;
    expect(() => FeatureMemory.fromClassifier(twoBlocks, { backbone: 'models/small', size: 4, neighbourhood: 1 }, engine, 3)).toThrow(/no third 3x3 convolution/);
    expect(() => FeatureMemory.fromClassifier(twoBlocks, { backbone: 'models/small', size: 4, neighbourhood: 1 }, engine, 'deep')).toThrow(/no third 3x3 convolution/);
    expect(() => new FeatureMemory({ backbone: 'test', channels: [4] as never, size: 4, neighbourhood: 1 }, engine)).toThrow(/two or three positive integers/);
  });

  // 37: a partial block of memory vectors; 1024: whole blocks.
  it.each([37, 1024])('gives each query its squared distance to the nearest of %i memory vectors (brute force in float64)', async (size) => {
    const m = new FeatureMemory({ backbone: 'test', channels: [4, 6], size, neighbourhood: 1 }, engine);
    try {
      const r = rng(3);
      const bank = randArray(r, size * 6);
      m.loadStateDict({ ...(await m.stateDict()), bank: { shape: [size, 6], dtype: 'F32', data: bank } });
      const queries = randArray(r, 1500 * 6);
      // A few queries equal to memory vectors: distance ~0.
      for (let i = 0; i < 5; i++) queries.set(bank.subarray(i * 6, i * 6 + 6), i * 6);
      const got = await m.nearestDistances(queries);
      for (let q = 0; q < 1500; q++) {
        let best = Infinity;
        let bestNorm = 0;
        for (let k = 0; k < size; k++) {
          let d = 0;
          let nq = 0;
          let nm = 0;
          for (let c = 0; c < 6; c++) {
            d += (queries[q * 6 + c] - bank[k * 6 + c]) ** 2;
            nq += queries[q * 6 + c] ** 2;
            nm += bank[k * 6 + c] ** 2;
          }
          if (d < best) [best, bestNorm] = [d, nq + nm];
        }
        expect(Math.abs(got[q] - best), `query ${q}`).toBeLessThanOrEqual(1e-4 * bestNorm + 1e-6);
        expect(got[q]).toBeGreaterThanOrEqual(0);
      }
    } finally {
      m.dispose();
    }
  });

  it('searches through its index (where the subgroup kernel runs) with the full search\'s distances, and rebuilds the index when the bank is replaced', async () => {
    // 8 features per cell (the index needs a multiple of 4).
    const r = rng(31);
    const e = (shape: number[], scale = 0.5) => ({ shape, dtype: 'F32' as const, data: randArray(r, shape.reduce((a, b) => a * b, 1), scale) });
    const state: StateDict = { '0.weight': e([4, 1, 3, 3]), '0.bias': e([4], 0.1), '3.weight': e([8, 4, 3, 3]), '3.bias': e([8], 0.1) };
    const m = FeatureMemory.fromClassifier(state, { backbone: 'test', size: 300, neighbourhood: 3 }, engine);
    expect(m.channels).toBe(8);
    try {
      const imgs = [workImage(rng(32), 40, 34), workImage(rng(33), 31, 45), workImage(rng(34), 22, 29)];
      await m.fill(imgs.slice(0, 2), new Rng(2));
      const maps = async (useIndex: boolean) => {
        m.useIndex = useIndex;
        return Promise.all(imgs.map(async (i) => Array.from(await m.distanceMap(i))));
      };
      expect(await maps(true)).toEqual(await maps(false));
      // Another bank (fill again from other images): the index follows it.
      await m.fill(imgs.slice(1), new Rng(3));
      expect(await maps(true)).toEqual(await maps(false));
    } finally {
      m.dispose();
    }
  });

  it('fills the memory with feature vectors of the images, and saves and loads by name', async () => {
    const state = classifierState(rng(4));
    const m = FeatureMemory.fromClassifier(state, { backbone: 'test', size: 50, neighbourhood: 3 }, engine);
    const imgs = [workImage(rng(5), 20, 16), workImage(rng(6), 18, 18)];
    await m.fill(imgs, new Rng(1));
    const feats = await Promise.all(imgs.map((i) => m.features(i)));
    const all = feats.flatMap((f) => Array.from({ length: f.h * f.w }, (_, k) => f.data.subarray(k * 6, k * 6 + 6)));
    const saved = await m.stateDict();
    expect(Object.keys(saved).sort()).toEqual(['backbone.0.bias', 'backbone.0.weight', 'backbone.3.bias', 'backbone.3.weight', 'bank']);
    const bank = saved.bank.data as Float32Array;
    for (let i = 0; i < 50; i++) expect(all.some((v) => v.every((x, c) => x === bank[i * 6 + c])), `bank row ${i}`).toBe(true);
    // Every memory vector is its own nearest neighbour.
    const self = await m.nearestDistances(bank);
    for (const d of self) expect(d).toBeLessThan(1e-4);
    const copy = new FeatureMemory(m.config, engine);
    copy.loadStateDict(saved);
    expect(Array.from(await copy.nearestDistances(all[3]))).toEqual(Array.from(await m.nearestDistances(all[3])));
    m.dispose();
    copy.dispose();
  });

  it('stores its bank at half precision with precision f16: rounded when filled, written as F16, loaded back exactly', async () => {
    const state = classifierState(rng(4));
    const imgs = [workImage(rng(5), 20, 16), workImage(rng(6), 18, 18)];
    const full = FeatureMemory.fromClassifier(state, { backbone: 'test', size: 50, neighbourhood: 3 }, engine);
    const half = FeatureMemory.fromClassifier(state, { backbone: 'test', size: 50, neighbourhood: 3, precision: 'f16' }, engine);
    const loaded = new FeatureMemory(half.config, engine);
    const converted: FeatureMemory[] = [];
    try {
      await full.fill(imgs, new Rng(1));
      await half.fill(imgs, new Rng(1));
      const fullBank = (await full.stateDict()).bank.data as Float32Array;
      const saved = await half.stateDict();
      expect(saved.bank.dtype).toBe('F16');
      // The same draw, each value rounded to the nearest half (and some rounding did happen).
      expect(Array.from(saved.bank.data as Uint16Array)).toEqual(Array.from(toHalfBits(fullBank)));
      expect(Array.from(roundToHalf(fullBank)).some((v, i) => v !== fullBank[i])).toBe(true);
      // Through a safetensors file: 2 bytes a value, and the loaded memory searches exactly as the filled one.
      const bytes = concat(encodeSafetensors(saved));
      expect(bytes.byteLength).toBeLessThan(concat(encodeSafetensors(await full.stateDict())).byteLength - 50 * 6 * 2 + 1);
      loaded.loadStateDict(decodeSafetensors(bytes).tensors);
      const feats = await Promise.all(imgs.map((i) => half.features(i)));
      const queries = Float32Array.from(feats.flatMap((f) => Array.from(f.data)));
      const dHalf = await half.nearestDistances(queries);
      expect(Array.from(await loaded.nearestDistances(queries))).toEqual(Array.from(dHalf));
      // Against the float32 bank: each squared distance moves by at most ~2^-10 of |q|^2 + |m|^2 (rounding of
      // the bank) plus the kernel's own 1e-4.
      const dFull = await full.nearestDistances(queries);
      const C = 6;
      let moved = 0;
      for (let i = 0; i < dFull.length; i++) {
        const q = queries.subarray(i * C, (i + 1) * C);
        const qq = q.reduce((a, v) => a + v * v, 0);
        const mm = Math.max(...Array.from({ length: 50 }, (_, j) => fullBank.subarray(j * C, (j + 1) * C).reduce((a, v) => a + v * v, 0)));
        expect(Math.abs(dHalf[i] - dFull[i]), `query ${i}`).toBeLessThan((qq + mm) * (2 ** -10 + 1e-4));
        moved = Math.max(moved, Math.abs(dHalf[i] - dFull[i]));
      }
      expect(moved).toBeGreaterThan(0);
      // A float32 memory stored at f16 holds the rounded bank; back at f32 it keeps those values, written as F32.
      converted.push(await full.withPrecision('f16'));
      expect(converted[0].config.precision).toBe('f16');
      expect(Array.from((await converted[0].stateDict()).bank.data as Uint16Array)).toEqual(Array.from(saved.bank.data as Uint16Array));
      converted.push(await half.withPrecision('f32'));
      const widened = await converted[1].stateDict();
      expect(converted[1].config.precision).toBeUndefined();
      expect(widened.bank.dtype).toBe('F32');
      expect(Array.from(widened.bank.data as Float32Array)).toEqual(Array.from(roundToHalf(fullBank)));
      expect(() => new FeatureMemory({ backbone: 'test', channels: [4, 6], size: 4, neighbourhood: 1, precision: 'f8' as never }, engine)).toThrow(/precision must be one of f32, f16/);
    } finally {
      for (const m of [full, half, loaded, ...converted]) m.dispose();
    }
  });

  it('fills a coreset memory with the greedy picks of its pool, and records how', async () => {
    const state = classifierState(rng(4));
    const imgs = [workImage(rng(5), 20, 16), workImage(rng(6), 18, 18)];
    const m = FeatureMemory.fromClassifier(state, { backbone: 'test', size: 12, neighbourhood: 3, sampling: 'coreset', pool: 40 }, engine);
    try {
      await m.fill(imgs, new Rng(1));
      const bank = (await m.stateDict()).bank.data as Float32Array;
      // Twelve distinct feature vectors of the images.
      const feats = await Promise.all(imgs.map((i) => m.features(i)));
      const all = feats.flatMap((f) => Array.from({ length: f.h * f.w }, (_, k) => f.data.subarray(k * 6, k * 6 + 6)));
      const rows = Array.from({ length: 12 }, (_, i) => bank.subarray(i * 6, i * 6 + 6));
      for (const [i, row] of rows.entries()) expect(all.some((v) => v.every((x, c) => x === row[c])), `bank row ${i}`).toBe(true);
      expect(new Set(rows.map((row) => row.join())).size).toBe(12);
      expect(m.config).toMatchObject({ sampling: 'coreset', pool: 40 });
    } finally {
      m.dispose();
    }
    expect(() => new FeatureMemory({ backbone: 'test', channels: [4, 6], size: 4, neighbourhood: 1, sampling: 'best' as never }, engine)).toThrow(/sampling must be one of random, coreset/);
  });

  it('refuses a backbone that is not a classifier of this project, and pads images below its field', async () => {
    const bad = { '0.weight': { shape: [4, 3, 3, 3], dtype: 'F32' as const, data: new Float32Array(108) } };
    expect(() => FeatureMemory.fromClassifier(bad, { backbone: 'models/x', size: 4, neighbourhood: 1 }, engine)).toThrow(/models\/x is not a classifier/);
    // An image below the backbone's 8 x 8 field is padded by repeating its border: features of the padded image.
    const m = FeatureMemory.fromClassifier(classifierState(rng(7)), { backbone: 'test', size: 4, neighbourhood: 1 }, engine);
    const thin = workImage(rng(8), 5, 12);
    const padded = { width: 8, height: 12, data: new Float32Array(96).map((_, i) => thin.data[Math.floor(i / 8) * 5 + Math.min(i % 8, 4)]) };
    const [a, b] = await Promise.all([m.features(thin), m.features(padded)]);
    expect([a.h, a.w]).toEqual([3, 1]); // 12 x 8: conv 10 x 6, pool 5 x 3, conv 3 x 1
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect((await m.distanceMap(thin)).length).toBe(60);
    m.dispose();
  });
});

describe('memoryAndReference', () => {
  it('keeps the memory and the edge-profile images apart, and the usual edge-profile images when there are enough', () => {
    const many = Array.from({ length: 229 }, (_, i) => i);
    const a = memoryAndReference(many, 80);
    expect(a.reference).toEqual(many.filter((i) => i % 3 === 0)); // as evenSubset(train, 80)
    expect(a.memory).toEqual(many.filter((i) => i % 3 !== 0));
    const few = [0, 1, 2, 3, 4, 5];
    const b = memoryAndReference(few, 80);
    expect(b).toEqual({ memory: [0, 2, 4], reference: [1, 3, 5] });
    for (const s of [a, b]) expect(s.memory.filter((i) => s.reference.includes(i))).toEqual([]);
  });
});
