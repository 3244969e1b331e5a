// FD / KID on classifier features (src/gan/quality.ts): the float64 maths against closed forms and
// independent computations, then through the shipped NEU classifier, where the metrics must rank
// degraded images as worse.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import { ShapeError } from '../src/gpu/errors.js';
import { loadModelDir } from '../src/cnn/model-dir.js';
import type { DefectClassifier } from '../src/cnn/model.js';
import { decodeImage, floatToU8, type GrayImage } from '../src/data/images.js';
import { SYNTHETIC_CLASSES, syntheticSample } from '../src/data/synthetic.js';
import { symmetricEigen } from '../src/gan/linalg.js';
import {
  addNoise,
  blur,
  extractFeatures,
  extractFeaturesFromImages,
  featureStats,
  frechetDistance,
  kernelInceptionDistance,
  polynomialMmd2,
  realFloor,
  selectRows,
  splitHalves,
  toModelSize,
  type FeatureMatrix,
} from '../src/gan/quality.js';
import { Rng } from '../src/util/rng.js';

const ROOT = join(import.meta.dirname, '..');
const NEU = join(ROOT, '..', 'shared', 'datasets', 'neu');

const matrix = (rows: number[][]): FeatureMatrix => ({ n: rows.length, d: rows[0].length, data: Float64Array.from(rows.flat()) });

function randomFeatures(seed: number, n: number, d: number, opts: { shift?: number; scale?: number } = {}): FeatureMatrix {
  const r = new Rng(seed);
  // Correlated, non-negative-ish like ReLU features: a random mixing of normals, plus a per-column offset.
  const mix = Array.from({ length: d }, () => Array.from({ length: d }, () => r.normal() / Math.sqrt(d)));
  const data = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const z = Array.from({ length: d }, () => r.normal());
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += mix[j][k] * z[k];
      data[i * d + j] = (opts.scale ?? 1) * s + 1 + (opts.shift ?? 0);
    }
  }
  return { n, d, data };
}

/** Trace of sqrt(Sa Sb) by the Denman-Beavers iteration on the (non-symmetric) product: independent of the eigensolver. */
function traceSqrtDenmanBeavers(sa: number[][], sb: number[][]): number {
  const d = sa.length;
  const mul = (a: number[][], b: number[][]) => a.map((row) => b[0].map((_, j) => row.reduce((s, v, k) => s + v * b[k][j], 0)));
  const inv = (a: number[][]) => {
    const m = a.map((row, i) => [...row, ...row.map((_, j) => (i === j ? 1 : 0))]);
    for (let c = 0; c < d; c++) {
      let p = c;
      for (let r = c + 1; r < d; r++) if (Math.abs(m[r][c]) > Math.abs(m[p][c])) p = r;
      [m[c], m[p]] = [m[p], m[c]];
      const piv = m[c][c];
      for (let j = 0; j < 2 * d; j++) m[c][j] /= piv;
      for (let r = 0; r < d; r++) {
        if (r === c) continue;
        const f = m[r][c];
        for (let j = 0; j < 2 * d; j++) m[r][j] -= f * m[c][j];
      }
    }
    return m.map((row) => row.slice(d));
  };
  let y = mul(sa, sb);
  let z = y.map((row, i) => row.map((_, j) => (i === j ? 1 : 0)));
  for (let it = 0; it < 60; it++) {
    const yi = inv(y);
    const zi = inv(z);
    y = y.map((row, i) => row.map((v, j) => 0.5 * (v + zi[i][j])));
    z = z.map((row, i) => row.map((v, j) => 0.5 * (v + yi[i][j])));
  }
  return y.reduce((s, row, i) => s + row[i], 0);
}

describe('symmetricEigen (Jacobi)', () => {
  it('reconstructs a random symmetric 40x40 matrix with orthonormal eigenvectors (1e-12 relative)', () => {
    const n = 40;
    const r = new Rng(3);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) a[i * n + j] = a[j * n + i] = r.uniform(-1, 1);
    const { values, vectors: v } = symmetricEigen(a, n);
    for (let k = 1; k < n; k++) expect(values[k]).toBeGreaterThanOrEqual(values[k - 1]);
    let err = 0;
    let orth = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let rec = 0;
        let dot = 0;
        for (let k = 0; k < n; k++) {
          rec += v[i * n + k] * values[k] * v[j * n + k];
          dot += v[k * n + i] * v[k * n + j];
        }
        err = Math.max(err, Math.abs(rec - a[i * n + j]));
        orth = Math.max(orth, Math.abs(dot - (i === j ? 1 : 0)));
      }
    }
    expect(err).toBeLessThan(1e-12);
    expect(orth).toBeLessThan(1e-12);
  });

  it('finds prescribed eigenvalues, including a zero one, of Q diag(l) Q^T (1e-13 absolute)', () => {
    const l = [-2.5, 0, 1e-3, 0.75, 4, 9.5];
    const n = l.length;
    // Q: a Householder reflection I - 2 u u^T / u.u, orthogonal by construction.
    const u = [0.3, -1.2, 0.7, 2.1, -0.4, 1.0];
    const uu = u.reduce((s, x) => s + x * x, 0);
    const q = (i: number, j: number) => (i === j ? 1 : 0) - (2 * u[i] * u[j]) / uu;
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) a[i * n + j] += q(i, k) * l[k] * q(j, k);
    const { values } = symmetricEigen(a, n);
    l.forEach((x, k) => expect(Math.abs(values[k] - x)).toBeLessThan(1e-13));
  });
});

describe('frechetDistance', () => {
  it('matches the closed form for diagonal covariances (1e-12 relative)', () => {
    // mu +- a_k e_k for k = 1..d: sample mean mu, unbiased covariance exactly diag(2 a_k^2 / (2d - 1)).
    const cloud = (mu: number[], a: number[]) => matrix(a.flatMap((ak, k) => [-1, 1].map((sgn) => mu.map((m, j) => m + (j === k ? sgn * ak : 0)))));
    const muA = [0.5, -1, 2, 0, 3];
    const muB = [1.5, -0.5, 2, 1, 2];
    const aA = [1, 2, 0.5, 3, 1.5];
    const aB = [2, 0.5, 0.5, 1, 4];
    const d = muA.length;
    const varOf = (a: number) => (2 * a * a) / (2 * d - 1);
    let expected = 0;
    for (let j = 0; j < d; j++) {
      const sa = varOf(aA[j]);
      const sb = varOf(aB[j]);
      expected += (muA[j] - muB[j]) ** 2 + sa + sb - 2 * Math.sqrt(sa * sb);
    }
    const got = frechetDistance(cloud(muA, aA), cloud(muB, aB));
    expect(Math.abs(got - expected) / expected).toBeLessThan(1e-12);
  });

  it('matches the 2x2 analytic matrix square root for non-diagonal covariances (1e-12 relative)', () => {
    // mu +- v1, mu +- v2: unbiased covariance 2 (v1 v1^T + v2 v2^T) / 3.
    const cloud = (mu: number[], v1: number[], v2: number[]) =>
      matrix([v1, v2].flatMap((v) => [-1, 1].map((s) => mu.map((m, j) => m + s * v[j]))));
    const cov = (v1: number[], v2: number[]) => [0, 1].map((i) => [0, 1].map((j) => (2 * (v1[i] * v1[j] + v2[i] * v2[j])) / 3));
    const [a1, a2, b1, b2] = [[1, 0.5], [-0.3, 2], [2, -1], [0.7, 0.4]];
    const sa = cov(a1, a2);
    const sb = cov(b1, b2);
    const det = (m: number[][]) => m[0][0] * m[1][1] - m[0][1] * m[1][0];
    const tr = (m: number[][]) => m[0][0] + m[1][1];
    const trAB = sa[0][0] * sb[0][0] + sa[0][1] * sb[1][0] + sa[1][0] * sb[0][1] + sa[1][1] * sb[1][1];
    // For 2x2 PSD N: (tr sqrt N)^2 = tr N + 2 sqrt(det N), with N = Sa^1/2 Sb Sa^1/2: tr N = tr(Sa Sb), det N = det Sa det Sb.
    const trSqrt = Math.sqrt(trAB + 2 * Math.sqrt(det(sa) * det(sb)));
    const dmu = (1 - -2) ** 2 + (3 - 0.5) ** 2;
    const expected = dmu + tr(sa) + tr(sb) - 2 * trSqrt;
    const got = frechetDistance(cloud([1, 3], a1, a2), cloud([-2, 0.5], b1, b2));
    expect(Math.abs(got - expected) / expected).toBeLessThan(1e-12);
  });

  it('matches an independent computation (moments by hand, Denman-Beavers sqrtm) on random 6-d sets (1e-9 relative)', () => {
    const a = randomFeatures(11, 40, 6);
    const b = randomFeatures(12, 55, 6, { shift: 0.3, scale: 1.4 });
    const moments = (f: FeatureMatrix) => {
      const rows = Array.from({ length: f.n }, (_, i) => Array.from(f.data.subarray(i * f.d, (i + 1) * f.d)));
      const mu = rows[0].map((_, j) => rows.reduce((s, r) => s + r[j], 0) / f.n);
      // E[x x^T] - mu mu^T, rescaled to the unbiased n - 1.
      const cov = mu.map((_, i) => mu.map((_, j) => ((rows.reduce((s, r) => s + r[i] * r[j], 0) / f.n - mu[i] * mu[j]) * f.n) / (f.n - 1)));
      return { mu, cov };
    };
    const ma = moments(a);
    const mb = moments(b);
    let expected = 0;
    for (let j = 0; j < 6; j++) expected += (ma.mu[j] - mb.mu[j]) ** 2 + ma.cov[j][j] + mb.cov[j][j];
    expected -= 2 * traceSqrtDenmanBeavers(ma.cov, mb.cov);
    const got = frechetDistance(a, b);
    expect(Math.abs(got - expected) / expected).toBeLessThan(1e-9);
    expect(Math.abs(frechetDistance(b, a) - got) / got).toBeLessThan(1e-10);
  });

  it('is ~0 for a set with itself: full rank (<= 1e-9 tr S) and rank-deficient, fewer rows than features (<= 1e-6 tr S)', () => {
    for (const [n, d, tol] of [[300, 32, 1e-9], [50, 128, 1e-6]] as const) {
      const f = randomFeatures(5, n, d);
      const s = featureStats(f);
      let tr = 0;
      for (let j = 0; j < d; j++) tr += s.cov[j * d + j];
      const fd = frechetDistance(f, f);
      expect(fd, `n=${n} d=${d}`).toBeGreaterThanOrEqual(0);
      expect(fd / tr, `n=${n} d=${d}`).toBeLessThan(tol);
    }
  });

  it('rejects mismatched widths and too few rows with a clear error', () => {
    expect(() => frechetDistance(randomFeatures(1, 5, 3), randomFeatures(2, 5, 4))).toThrow(/feature widths differ \(3 vs 4\)/);
    expect(() => frechetDistance(matrix([[1, 2]]), randomFeatures(2, 5, 2))).toThrow(ShapeError);
  });
});

describe('kernelInceptionDistance', () => {
  const k = (x: ArrayLike<number>, y: ArrayLike<number>) => {
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i] * y[i];
    return (s / x.length + 1) ** 3;
  };
  const row = (f: FeatureMatrix, i: number) => f.data.subarray(i * f.d, (i + 1) * f.d);
  /** The unbiased MMD^2 straight from its definition, over ordered pairs. */
  function bruteMmd2(a: FeatureMatrix, b: FeatureMatrix): number {
    let xx = 0;
    let yy = 0;
    let xy = 0;
    for (let i = 0; i < a.n; i++) for (let j = 0; j < a.n; j++) if (i !== j) xx += k(row(a, i), row(a, j));
    for (let i = 0; i < b.n; i++) for (let j = 0; j < b.n; j++) if (i !== j) yy += k(row(b, i), row(b, j));
    for (let i = 0; i < a.n; i++) for (let j = 0; j < b.n; j++) xy += k(row(a, i), row(b, j));
    return xx / (a.n * (a.n - 1)) + yy / (b.n * (b.n - 1)) - (2 * xy) / (a.n * b.n);
  }

  it('polynomialMmd2 equals a brute-force float64 computation on small sets (1e-12 relative)', () => {
    const a = randomFeatures(21, 7, 5);
    const b = randomFeatures(22, 9, 5, { shift: 0.4 });
    const expected = bruteMmd2(a, b);
    expect(Math.abs(polynomialMmd2(a, b) - expected) / Math.abs(expected)).toBeLessThan(1e-12);
  });

  it('with subsets of the whole sets: every subset gives the brute-force value, std 0 (1e-12)', () => {
    const a = randomFeatures(23, 12, 4);
    const b = randomFeatures(24, 12, 4, { scale: 1.3 });
    const expected = bruteMmd2(a, b);
    const kid = kernelInceptionDistance(a, b, { subsets: 5, subsetSize: 12, seed: 3 });
    expect(Math.abs(kid.mean - expected) / Math.abs(expected)).toBeLessThan(1e-12);
    expect(kid.std).toBeLessThan(1e-12 * Math.abs(expected));
  });

  it('a set with itself over the whole set gives the exact small negative value -(2/m)(mean k_ii - mean k_ij) (1e-12)', () => {
    const f = randomFeatures(25, 30, 8);
    let diag = 0;
    let off = 0;
    for (let i = 0; i < f.n; i++) for (let j = 0; j < f.n; j++) (i === j ? (diag += k(row(f, i), row(f, j))) : (off += k(row(f, i), row(f, j))));
    const expected = -(2 / f.n) * (diag / f.n - off / (f.n * (f.n - 1)));
    const got = kernelInceptionDistance(f, f, { subsets: 2, subsetSize: f.n }).mean;
    expect(Math.abs(got - expected) / Math.abs(expected)).toBeLessThan(1e-12);
  });

  it('is deterministic per seed, cache-independent, ~0 for a set with itself and large for a shifted set', () => {
    const a = randomFeatures(26, 200, 16);
    const shifted = randomFeatures(26, 200, 16, { shift: 0.5 });
    const one = kernelInceptionDistance(a, shifted, { subsets: 20, seed: 7 });
    expect(kernelInceptionDistance(a, shifted, { subsets: 20, seed: 7 })).toEqual(one);
    expect(kernelInceptionDistance(a, shifted, { subsets: 20, seed: 8 }).mean).not.toBe(one.mean);
    expect(one.subsetSize).toBe(100); // default: half the smaller set
    const uncached = kernelInceptionDistance(a, shifted, { subsets: 20, seed: 7, maxCachedPoints: 0 });
    expect(Math.abs(uncached.mean - one.mean) / one.mean).toBeLessThan(1e-12);
    expect(Math.abs(uncached.std - one.std) / one.std).toBeLessThan(1e-9);
    // Self: independent subsets of one set; the mean is within a few percent of the shifted set's value.
    const self = kernelInceptionDistance(a, a, { subsets: 20, seed: 7 });
    expect(Math.abs(self.mean)).toBeLessThan(0.02 * one.mean);
    expect(one.mean).toBeGreaterThan(5 * one.std);
  });

  it('rejects a subset larger than a set', () => {
    expect(() => kernelInceptionDistance(randomFeatures(1, 10, 3), randomFeatures(2, 6, 3), { subsetSize: 8 })).toThrow(/subsetSize must be an integer in \[2, 6\]/);
  });
});

describe('realFloor', () => {
  it('splits into disjoint equal halves deterministically and scores them', () => {
    const h = splitHalves(11, 4);
    expect(h.a).toHaveLength(5);
    expect(h.b).toHaveLength(5);
    expect(new Set([...h.a, ...h.b]).size).toBe(10);
    expect(splitHalves(11, 4)).toEqual(h);
    const real = randomFeatures(31, 120, 8);
    const floor = realFloor(real, { seed: 2, kid: { subsets: 10, seed: 1 } });
    expect(floor.halfSize).toBe(60);
    const a = selectRows(real, floor.halves.a);
    const b = selectRows(real, floor.halves.b);
    expect(floor.fd).toBe(frechetDistance(a, b));
    expect(floor.kid).toEqual(kernelInceptionDistance(a, b, { subsets: 10, seed: 1 }));
    // Same distribution: the floor is small next to a genuinely shifted set of the same size.
    const shiftedFd = frechetDistance(a, randomFeatures(32, 60, 8, { shift: 0.5 }));
    expect(floor.fd).toBeLessThan(0.5 * shiftedFd);
  });
});

describe('degradations', () => {
  const noiseImage = (seed: number, w: number, h: number): GrayImage => ({ width: w, height: h, data: new Rng(seed).uniformArray(w * h, 0.1, 0.9) });

  it('blur equals a direct 2-D Gaussian convolution with mirrored borders, even with a radius past the image (1e-6)', () => {
    const img = noiseImage(41, 7, 5);
    const sigma = 1.3; // radius 4 > height 5: borders fold more than once
    const got = blur(img, sigma);
    const r = Math.ceil(3 * sigma);
    const mirror = (i: number, n: number) => {
      while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - i - 1;
      return i;
    };
    const g = (t: number) => Math.exp(-(t * t) / (2 * sigma * sigma));
    let norm = 0;
    for (let s = -r; s <= r; s++) for (let t = -r; t <= r; t++) norm += g(s) * g(t);
    for (let y = 0; y < 5; y++) {
      for (let x = 0; x < 7; x++) {
        let v = 0;
        for (let s = -r; s <= r; s++) for (let t = -r; t <= r; t++) v += g(s) * g(t) * img.data[mirror(y + s, 5) * 7 + mirror(x + t, 7)];
        expect(Math.abs(got.data[y * 7 + x] - v / norm), `(${x}, ${y})`).toBeLessThan(1e-6);
      }
    }
  });

  it('blur keeps a flat image flat, lowers the variance of noise, and sigma 0 copies', () => {
    const flat = { width: 9, height: 6, data: new Float32Array(54).fill(0.37) };
    for (const v of blur(flat, 2).data) expect(Math.abs(v - 0.37)).toBeLessThan(1e-6);
    const img = noiseImage(42, 32, 32);
    const variance = (d: Float32Array) => {
      const m = d.reduce((s, v) => s + v, 0) / d.length;
      return d.reduce((s, v) => s + (v - m) ** 2, 0) / d.length;
    };
    expect(variance(blur(img, 1).data)).toBeLessThan(0.3 * variance(img.data));
    expect(blur(img, 0).data).toEqual(img.data);
    expect(() => blur(img, -1)).toThrow(/sigma must be a finite number >= 0/);
  });

  it('addNoise is deterministic per seed, has the requested std (5%) and clips to [0, 1] unless told not to', () => {
    const mid = { width: 64, height: 64, data: new Float32Array(4096).fill(0.5) };
    const a = addNoise(mid, 0.05, 9);
    expect(addNoise(mid, 0.05, 9).data).toEqual(a.data);
    expect(addNoise(mid, 0.05, 10).data).not.toEqual(a.data);
    const m = a.data.reduce((s, v) => s + v, 0) / 4096;
    const sd = Math.sqrt(a.data.reduce((s, v) => s + (v - m) ** 2, 0) / 4095);
    expect(Math.abs(sd - 0.05) / 0.05).toBeLessThan(0.05);
    const loud = addNoise(mid, 1, 3);
    expect(Math.min(...loud.data)).toBe(0);
    expect(Math.max(...loud.data)).toBe(1);
    const raw = addNoise(mid, 1, 3, { clip: false });
    expect(Math.max(...raw.data)).toBeGreaterThan(1);
  });
});

describe('through the shipped NEU classifier', () => {
  let engine: Engine;
  let model: DefectClassifier;
  let fit: 'fill' | 'cover';
  beforeAll(async () => {
    engine = await Engine.create();
    const loaded = loadModelDir(join(ROOT, 'models/neu'), engine);
    model = loaded.model;
    fit = loaded.meta.preprocessing.resize;
  });
  afterAll(() => {
    model.dispose();
    engine.destroy();
  });

  const synthetic = (seed: number, perClass: number): GrayImage[] =>
    SYNTHETIC_CLASSES.flatMap((c, ci) => Array.from({ length: perClass }, (_, i) => ({ width: 64, height: 64, data: syntheticSample(c, 64, new Rng(seed * 100_000 + ci * 1000 + i)) })));

  it('features are the penultimate layer: the head applied to them in float64 gives the logits (1e-4 relative)', async () => {
    const imgs = synthetic(7, 2);
    const pixels = new Float32Array(imgs.length * 4096);
    imgs.forEach((im, i) => pixels.set(im.data, i * 4096));
    const x = model.inputTensor(pixels, imgs.length);
    const f = await extractFeatures(model, x);
    const z = model.logits(x);
    const logits = await z.toArray();
    z.dispose();
    x.dispose();
    const state = await model.net.stateDict();
    const w = state['13.weight'];
    const b = state['13.bias'];
    const k = model.config.classes.length;
    expect(f.n).toBe(imgs.length);
    expect(f.d).toBe(128);
    expect(Math.min(...f.data)).toBeGreaterThanOrEqual(0); // ReLU output
    expect(Math.max(...f.data)).toBeGreaterThan(0);
    let maxErr = 0;
    let maxAbs = 0;
    for (let i = 0; i < f.n; i++) {
      for (let c = 0; c < k; c++) {
        let v = b.data[c];
        for (let j = 0; j < 128; j++) v += w.data[c * 128 + j] * f.data[i * 128 + j];
        maxErr = Math.max(maxErr, Math.abs(v - logits[i * k + c]));
        maxAbs = Math.max(maxAbs, Math.abs(logits[i * k + c]));
      }
    }
    expect(maxErr / maxAbs).toBeLessThan(1e-4);
  });

  it('gives the same features whatever the batch size, from tensors or from raw images (1e-5 relative)', async () => {
    const imgs = synthetic(8, 2); // 12 images
    const pixels = new Float32Array(imgs.length * 4096);
    imgs.forEach((im, i) => pixels.set(im.data, i * 4096));
    const x = model.inputTensor(pixels, imgs.length);
    const whole = await extractFeatures(model, x);
    const batched = await extractFeatures(model, x, { batchSize: 5 });
    x.dispose();
    const fromImages = await extractFeaturesFromImages(model, imgs, { batchSize: 4 });
    const scale = Math.max(...whole.data);
    for (const other of [batched, fromImages]) {
      let err = 0;
      for (let i = 0; i < whole.data.length; i++) err = Math.max(err, Math.abs(other.data[i] - whole.data[i]));
      expect(err / scale).toBeLessThan(1e-5);
    }
  });

  it('resizes raw images of another size as decodeImage does (within one grey level)', async () => {
    const big = { width: 100, height: 90, data: new Rng(5).uniformArray(9000, 0, 1) };
    const png = await sharp(Buffer.from(floatToU8(big.data)), { raw: { width: 100, height: 90, channels: 1 } }).png().toBuffer();
    const decoded = await decodeImage(png, { size: 64, fit });
    const resized = await toModelSize(big, 64, fit);
    expect(resized).toHaveLength(4096);
    let err = 0;
    for (let i = 0; i < 4096; i++) err = Math.max(err, Math.abs(resized[i] - decoded[i]));
    expect(err).toBeLessThanOrEqual(1 / 255 + 1e-7);
  });

  it('rejects an input tensor of the wrong size', async () => {
    const x = engine.tensor(new Float32Array(2 * 32 * 32).fill(0.5), [2, 1, 32, 32]);
    await expect(extractFeatures(model, x)).rejects.toThrow(/expected input \[n, 1, 64, 64\]/);
    x.dispose();
  });

  /** FD and KID of `real` against itself and against degraded copies; asserts the ranking. */
  async function expectRanking(real: GrayImage[]): Promise<void> {
    const feats = (imgs: GrayImage[]) => extractFeaturesFromImages(model, imgs, { fit });
    const f = await feats(real);
    const again = await feats(real);
    const kid = { subsets: 20, seed: 1 };
    const score = async (imgs: GrayImage[]) => {
      const g = await feats(imgs);
      return { fd: frechetDistance(f, g), kid: kernelInceptionDistance(f, g, kid).mean };
    };
    const noise = [];
    for (const s of [0.05, 0.1, 0.2]) noise.push(await score(real.map((im, i) => addNoise(im, s, i))));
    const blurred = [];
    for (const s of [0.5, 1, 2]) blurred.push(await score(real.map((im) => blur(im, s))));
    let tr = 0;
    const st = featureStats(f);
    for (let j = 0; j < f.d; j++) tr += st.cov[j * f.d + j];
    // Set vs itself (features extracted twice): FD ~ 0 relative to the feature variance.
    expect(frechetDistance(f, again) / tr).toBeLessThan(1e-6);
    for (const series of [noise, blurred]) {
      expect(series[0].fd).toBeLessThan(series[1].fd);
      expect(series[1].fd).toBeLessThan(series[2].fd);
      expect(series[0].kid).toBeLessThan(series[2].kid);
    }
    // The strongest degradations are far above the real-vs-real floor at the same size.
    const floor = realFloor(f, { seed: 3, kid });
    const half = floor.halves.a.map((i) => real[i]);
    const fa = selectRows(f, floor.halves.b);
    const noisyHalf = await feats(half.map((im, i) => addNoise(im, 0.2, i)));
    expect(frechetDistance(fa, noisyHalf)).toBeGreaterThan(3 * floor.fd);
  }

  it('ranks degradations of synthetic steel-like images: FD and KID grow with noise std and blur sigma', async () => {
    await expectRanking(synthetic(1, 12));
  });

  it.runIf(existsSync(NEU))('ranks degradations of real NEU images the same way', async () => {
    const images: GrayImage[] = [];
    for (const cls of readdirSync(NEU).filter((c) => !c.includes('.')).sort()) {
      const files = readdirSync(join(NEU, cls)).filter((f) => f.endsWith('.png')).sort().slice(0, 12);
      for (const file of files) images.push({ width: 64, height: 64, data: await decodeImage(join(NEU, cls, file), { size: 64, fit }) });
    }
    expect(images.length).toBe(72);
    await expectRanking(images);
  });
});
