// Loader for test/fixtures/torch_ref_seed1.json (PyTorch float64 reference values; schema in
// test/fixtures/torch_ref_README.md). Decodes generated inputs and sampled outputs.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export interface RefTensor {
  shape: number[];
  dtype: 'f64' | 'i32';
  data?: number[];
  gen?: { kind: 'quadmod'; a: number; b: number; c: number; m: number; scale: number };
  sample?: { index: number[]; value: number[] };
  stats?: { sum: number; sum_abs: number; sum_sq: number; min: number; max: number };
}

export interface RefCase {
  id: string;
  base_id: string;
  op: string;
  layout: 'NCHW' | 'NHWC' | null;
  weight_layout?: string;
  params: Record<string, any>;
  inputs: Record<string, RefTensor>;
  upstream: { dy: RefTensor } | null;
  outputs: Record<string, RefTensor>;
  grads: Record<string, RefTensor>;
  fp32_torch_err: Record<string, number>;
  steps?: any[];
}

const file = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'torch_ref_seed1.json');
let all: RefCase[] | undefined;

/** Cases of one op in NCHW layout (or layout-free ops). */
export function refCases(op: string): RefCase[] {
  all ??= JSON.parse(readFileSync(file, 'utf8')).cases as RefCase[];
  return all.filter((c) => c.op === op && c.layout !== 'NHWC');
}

/** The full data of an input tensor (expands generated inputs). */
export function refData(t: RefTensor): Float64Array {
  if (t.data) return Float64Array.from(t.data);
  if (t.gen) {
    const { a, b, c, m, scale } = t.gen;
    const n = t.shape.reduce((x, y) => x * y, 1);
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = ((((a * i * i + b * i + c) % m) + m) % m - (m - 1) / 2) * scale;
    return out;
  }
  throw new Error('sampled tensor has no full data; use expectRef');
}

/** The tolerance the reference README recommends for a tensor: max(1e-5, 20 * fp32_torch_err). */
export function refTol(c: RefCase, name: string): number {
  return Math.max(1e-5, 20 * (c.fp32_torch_err[name] ?? 0));
}

/**
 * Compares `got` with a reference tensor using the README's metric
 * max|got - exp| / max(max|exp|, 1e-30) <= tol; sampled tensors compare the samples and the stats.
 */
export function expectRef(got: ArrayLike<number>, exp: RefTensor, tol: number, what: string): void {
  const n = exp.shape.reduce((x, y) => x * y, 1);
  expect(got.length, `${what}: element count`).toBe(n);
  const pairs: [number, number][] = exp.data
    ? exp.data.map((e, i) => [got[i], e])
    : exp.sample!.index.map((idx, k) => [got[idx], exp.sample!.value[k]]);
  let num = 0;
  let den = 0;
  for (const [g, e] of pairs) {
    if (!Number.isFinite(g)) throw new Error(`${what}: non-finite value ${g}`);
    num = Math.max(num, Math.abs(g - e));
    den = Math.max(den, Math.abs(e));
  }
  const err = num / Math.max(den, 1e-30);
  expect(err, `${what}: relative error`).toBeLessThanOrEqual(tol);
  if (exp.stats) {
    let sumAbs = 0;
    let sumSq = 0;
    for (let i = 0; i < got.length; i++) {
      sumAbs += Math.abs(got[i]);
      sumSq += got[i] * got[i];
    }
    expect(Math.abs(sumAbs - exp.stats.sum_abs) / exp.stats.sum_abs, `${what}: sum_abs`).toBeLessThanOrEqual(1e-4);
    expect(Math.abs(sumSq - exp.stats.sum_sq) / exp.stats.sum_sq, `${what}: sum_sq`).toBeLessThanOrEqual(1e-4);
  }
}
