// Image-quality metrics between two sets of images, on the penultimate-layer features of a trained
// classifier of this project (see features.ts):
//
//   FD   the Fréchet distance between Gaussians fitted to the two feature sets (the FID recipe, with
//        this project's classifier instead of Inception): |mu_a - mu_b|^2 + tr(Sa + Sb - 2 (Sa^1/2 Sb Sa^1/2)^1/2).
//   KID  the kernel distance of Binkowski et al. 2018 ("Demystifying MMD GANs"): the unbiased MMD^2
//        with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets.
//
// Both are biased at a few hundred images (FD strongly, upwards; KID's mean is unbiased but noisy), so a
// number alone says little: realFloor() gives the value between two disjoint halves of the real set,
// which is what a perfect generator would score at that sample size. Print it beside every result.
// All arithmetic is float64.
import { ShapeError } from '../gpu/errors.js';
import { Rng } from '../util/rng.js';
import type { FeatureMatrix } from './features.js';
import { matmulSquare, sqrtPsd, symmetricEigen } from './linalg.js';

export { extractFeatures, extractFeaturesFromImages, toModelSize, type FeatureMatrix, type FeatureOptions, type ImageFeatureOptions } from './features.js';
export { addNoise, blur, type NoiseOptions } from './degrade.js';

function checkMatrix(f: FeatureMatrix, what: string, minRows: number): void {
  if (!Number.isInteger(f.n) || !Number.isInteger(f.d) || f.d < 1 || f.n < 0) throw new ShapeError(`${what}: bad feature matrix shape ${f.n}x${f.d}`);
  if (f.data.length !== f.n * f.d) throw new ShapeError(`${what}: feature matrix ${f.n}x${f.d} holds ${f.data.length} values`);
  if (f.n < minRows) throw new ShapeError(`${what}: needs at least ${minRows} feature rows, got ${f.n}`);
  for (let i = 0; i < f.data.length; i++) {
    if (!Number.isFinite(f.data[i])) throw new RangeError(`${what}: non-finite feature at row ${Math.floor(i / f.d)}, column ${i % f.d}`);
  }
}

function checkPair(a: FeatureMatrix, b: FeatureMatrix, what: string, minRows: number): void {
  checkMatrix(a, `${what} (first set)`, minRows);
  checkMatrix(b, `${what} (second set)`, minRows);
  if (a.d !== b.d) throw new ShapeError(`${what}: feature widths differ (${a.d} vs ${b.d})`);
}

/** Mean and unbiased covariance (divided by n - 1) of a feature set. */
export interface FeatureStats {
  d: number;
  mean: Float64Array;
  /** d x d row-major. */
  cov: Float64Array;
}

export function featureStats(f: FeatureMatrix): FeatureStats {
  checkMatrix(f, 'featureStats', 2);
  const { n, d, data } = f;
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += data[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = data[i * d + j] - mean[j];
    for (let j = 0; j < d; j++) {
      const rj = row[j];
      if (rj === 0) continue;
      for (let k = j; k < d; k++) cov[j * d + k] += rj * row[k];
    }
  }
  for (let j = 0; j < d; j++) {
    for (let k = j; k < d; k++) {
      const v = cov[j * d + k] / (n - 1);
      cov[j * d + k] = v;
      cov[k * d + j] = v;
    }
  }
  return { d, mean, cov };
}

/**
 * Fréchet distance between N(mean_a, cov_a) and N(mean_b, cov_b). The trace of the matrix square root is
 * taken in the symmetric form tr((Sa^1/2 Sb Sa^1/2)^1/2), with eigenvalues that rounding made slightly
 * negative clipped to zero, so rank-deficient covariances (fewer images than features) are fine.
 * The result is clamped at 0 (it is a squared distance; rounding can leave about -1e-12 for equal inputs).
 */
export function frechetDistanceFromStats(a: FeatureStats, b: FeatureStats): number {
  if (a.d !== b.d) throw new ShapeError(`frechetDistance: feature widths differ (${a.d} vs ${b.d})`);
  const d = a.d;
  let dmu = 0;
  for (let j = 0; j < d; j++) dmu += (a.mean[j] - b.mean[j]) ** 2;
  let trA = 0;
  let trB = 0;
  for (let j = 0; j < d; j++) {
    trA += a.cov[j * d + j];
    trB += b.cov[j * d + j];
  }
  const sa = sqrtPsd(a.cov, d);
  const m = matmulSquare(matmulSquare(sa, b.cov, d), sa, d);
  const { values } = symmetricEigen(m, d);
  let trSqrt = 0;
  for (let k = 0; k < d; k++) trSqrt += Math.sqrt(Math.max(values[k], 0));
  return Math.max(0, dmu + trA + trB - 2 * trSqrt);
}

/** Fréchet distance between the Gaussians fitted to two feature sets (each needs >= 2 rows). */
export function frechetDistance(a: FeatureMatrix, b: FeatureMatrix): number {
  checkPair(a, b, 'frechetDistance', 2);
  return frechetDistanceFromStats(featureStats(a), featureStats(b));
}

/** k(x, y) = (x.y / d + 1)^3 for rows i of a and j of b. */
function polyKernel(a: Float64Array, i: number, b: Float64Array, j: number, d: number): number {
  let s = 0;
  const oi = i * d;
  const oj = j * d;
  for (let k = 0; k < d; k++) s += a[oi + k] * b[oj + k];
  const v = s / d + 1;
  return v * v * v;
}

/** The polynomial kernel between all rows of `z` (nRows x d): nRows x nRows, symmetric. */
function kernelGram(z: Float64Array, nRows: number, d: number): Float64Array {
  const g = new Float64Array(nRows * nRows);
  for (let i = 0; i < nRows; i++) {
    for (let j = i; j < nRows; j++) {
      const v = polyKernel(z, i, z, j, d);
      g[i * nRows + j] = v;
      g[j * nRows + i] = v;
    }
  }
  return g;
}

/** Unbiased MMD^2 from a Gram matrix over a union of points: `ia` and `ib` index its rows. */
function mmd2FromGram(g: Float64Array, size: number, ia: ArrayLike<number>, ib: ArrayLike<number>): number {
  const m = ia.length;
  const n = ib.length;
  let sAA = 0;
  for (let x = 0; x < m; x++) for (let y = x + 1; y < m; y++) sAA += g[ia[x] * size + ia[y]];
  let sBB = 0;
  for (let x = 0; x < n; x++) for (let y = x + 1; y < n; y++) sBB += g[ib[x] * size + ib[y]];
  let sAB = 0;
  for (let x = 0; x < m; x++) for (let y = 0; y < n; y++) sAB += g[ia[x] * size + ib[y]];
  return (2 * sAA) / (m * (m - 1)) + (2 * sBB) / (n * (n - 1)) - (2 * sAB) / (m * n);
}

/** Stacks rows of a (indices ia) then rows of b (indices ib) into one (|ia| + |ib|) x d array. */
function stackRows(a: FeatureMatrix, ia: ArrayLike<number>, b: FeatureMatrix, ib: ArrayLike<number>): Float64Array {
  const d = a.d;
  const z = new Float64Array((ia.length + ib.length) * d);
  for (let x = 0; x < ia.length; x++) z.set(a.data.subarray(ia[x] * d, ia[x] * d + d), x * d);
  for (let y = 0; y < ib.length; y++) z.set(b.data.subarray(ib[y] * d, ib[y] * d + d), (ia.length + y) * d);
  return z;
}

const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

/**
 * Unbiased MMD^2 between all of `a` and all of `b` with the cubic polynomial kernel
 * k(x, y) = (x.y / d + 1)^3: mean k over distinct pairs within a, plus the same within b, minus twice the
 * mean k across. Each set needs >= 2 rows. Can be slightly negative when the sets match.
 */
export function polynomialMmd2(a: FeatureMatrix, b: FeatureMatrix): number {
  checkPair(a, b, 'polynomialMmd2', 2);
  const z = stackRows(a, range(a.n), b, range(b.n));
  const size = a.n + b.n;
  return mmd2FromGram(kernelGram(z, size, a.d), size, range(a.n), range(b.n, a.n));
}

export interface KidOptions {
  /** Random subsets to average over (default 100, as Binkowski et al.). */
  subsets?: number;
  /**
   * Rows drawn from each set per subset, without replacement (default min(1000, floor(min(nA, nB) / 2))).
   * The reference takes 1000, i.e. the whole set below 1000 images, which makes every subset the same and
   * the std meaningless; half the smaller set keeps the subsets different. The estimator is unbiased at
   * any subset size, so only the spread depends on it.
   */
  subsetSize?: number;
  /** Seed of the subset draws (default 0): the same seed gives the same result. */
  seed?: number;
  /**
   * Up to this many rows in both sets together, the kernel between all of them is computed once and reused
   * by every subset (float64, points^2 * 8 bytes: 32 MB at the default 2000); above it, per subset.
   * Changes only speed and memory, never the result.
   */
  maxCachedPoints?: number;
}

export interface KidResult {
  /** Mean of the per-subset unbiased MMD^2. */
  mean: number;
  /** Population standard deviation (ddof 0, as the reference code) of the per-subset values. */
  std: number;
  subsets: number;
  subsetSize: number;
}

/** m distinct integers from [0, n), in draw order (partial Fisher-Yates). */
function sampleWithoutReplacement(rng: Rng, n: number, m: number): Int32Array {
  const pool = Int32Array.from(range(n));
  for (let i = 0; i < m; i++) {
    const j = i + rng.int(n - i);
    const t = pool[i];
    pool[i] = pool[j];
    pool[j] = t;
  }
  return pool.slice(0, m);
}

/**
 * Kernel Inception Distance (with this project's classifier features): the unbiased polynomial-kernel MMD^2
 * over `subsets` random subsets of `subsetSize` rows from each set, reported as mean and std.
 * Deterministic for a given seed.
 */
export function kernelInceptionDistance(a: FeatureMatrix, b: FeatureMatrix, opts: KidOptions = {}): KidResult {
  checkPair(a, b, 'kernelInceptionDistance', 2);
  const subsets = opts.subsets ?? 100;
  const subsetSize = opts.subsetSize ?? Math.max(2, Math.min(1000, Math.floor(Math.min(a.n, b.n) / 2)));
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(subsets) || subsets < 1) throw new RangeError(`kernelInceptionDistance: subsets must be a positive integer, got ${subsets}`);
  if (!Number.isInteger(subsetSize) || subsetSize < 2 || subsetSize > Math.min(a.n, b.n))
    throw new RangeError(`kernelInceptionDistance: subsetSize must be an integer in [2, ${Math.min(a.n, b.n)}] (the smaller set), got ${subsetSize}`);
  if (!Number.isInteger(seed)) throw new RangeError(`kernelInceptionDistance: seed must be an integer, got ${seed}`);

  const rng = new Rng(seed);
  const values = new Float64Array(subsets);
  const total = a.n + b.n;
  const gram = total <= (opts.maxCachedPoints ?? 2000) ? kernelGram(stackRows(a, range(a.n), b, range(b.n)), total, a.d) : null;
  const local = range(subsetSize);
  const localB = range(subsetSize, subsetSize);
  for (let s = 0; s < subsets; s++) {
    const ia = sampleWithoutReplacement(rng, a.n, subsetSize);
    const ib = sampleWithoutReplacement(rng, b.n, subsetSize);
    if (gram) {
      values[s] = mmd2FromGram(gram, total, ia, ib.map((i) => i + a.n));
    } else {
      const size = 2 * subsetSize;
      values[s] = mmd2FromGram(kernelGram(stackRows(a, ia, b, ib), size, a.d), size, local, localB);
    }
  }
  let mean = 0;
  for (const v of values) mean += v;
  mean /= subsets;
  let varSum = 0;
  for (const v of values) varSum += (v - mean) ** 2;
  return { mean, std: Math.sqrt(varSum / subsets), subsets, subsetSize };
}

/** The rows `rows` of a feature matrix, in that order. */
export function selectRows(f: FeatureMatrix, rows: ArrayLike<number>): FeatureMatrix {
  const data = new Float64Array(rows.length * f.d);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    if (!Number.isInteger(r) || r < 0 || r >= f.n) throw new RangeError(`selectRows: row ${r} out of range [0, ${f.n})`);
    data.set(f.data.subarray(r * f.d, r * f.d + f.d), i * f.d);
  }
  return { n: rows.length, d: f.d, data };
}

/**
 * Two disjoint random halves of [0, n), each floor(n / 2) long (with odd n one index is left out),
 * deterministic per seed.
 */
export function splitHalves(n: number, seed = 0): { a: number[]; b: number[] } {
  if (!Number.isInteger(n) || n < 4) throw new RangeError(`splitHalves: needs an integer n >= 4 (two halves of >= 2), got ${n}`);
  const order = new Rng(seed).shuffle(range(n));
  const h = Math.floor(n / 2);
  return { a: order.slice(0, h), b: order.slice(h, 2 * h) };
}

export interface FloorOptions {
  /** Seed of the split into halves (default 0). */
  seed?: number;
  /** KID options for the halves (subsetSize defaults as in kernelInceptionDistance, from the half size). */
  kid?: KidOptions;
}

export interface RealFloor {
  /** FD between the two halves. */
  fd: number;
  /** KID between the two halves. */
  kid: KidResult;
  /** Rows per half. A generated set should be scored against one half with this many images to be comparable. */
  halfSize: number;
  /** The row indices of the halves, to score other sets against the same real half. */
  halves: { a: number[]; b: number[] };
}

/**
 * The real-vs-real floor: FD and KID between two disjoint random halves of the real features. It is what
 * a generator indistinguishable from the real data would score at this sample size; report it beside every
 * generated-vs-real number, measured with the same number of images.
 */
export function realFloor(real: FeatureMatrix, opts: FloorOptions = {}): RealFloor {
  checkMatrix(real, 'realFloor', 4);
  const halves = splitHalves(real.n, opts.seed ?? 0);
  const a = selectRows(real, halves.a);
  const b = selectRows(real, halves.b);
  return { fd: frechetDistance(a, b), kid: kernelInceptionDistance(a, b, opts.kid), halfSize: halves.a.length, halves };
}
