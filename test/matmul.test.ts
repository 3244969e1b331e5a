import { describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { DeviceTensor } from '../src/gpu/device-tensor.js';
import { ShapeError, TensorTooLargeError } from '../src/gpu/errors.js';
import '../src/kernels/matmul.js';
import { hasSubgroups, matmul, type MatmulOptions } from '../src/kernels/matmul.js';
import { kernels } from '../src/kernels/registry.js';
import { matmulRef } from '../src/kernels/reference/matmul.js';
import type { ActivationName } from '../src/kernels/reference/activation.js';
import { expectClose, randArray, rng } from './helpers.js';
import { variantRuns, gemmTestEngines, type DeviceKind } from './gemm-helpers.js';

// Tolerance: float32 accumulation of K <= 5000 products of values in [-1, 1) against float64:
// relative error (max |diff| / max |expected|) <= 1e-4.
const TOL = 1e-4;

let engine: Engine;
let sgEngine: Engine;
const engineFor = gemmTestEngines((plain, subgroups) => ([engine, sgEngine] = [plain, subgroups]));

interface Case {
  a: number[];
  b: number[];
  transA?: boolean;
  transB?: boolean;
  bias?: boolean;
  activation?: ActivationName;
}

/** Shapes of a and b for an M x K times K x N product (with batch dims and transposes). */
function shapes(M: number, N: number, K: number, transA: boolean, transB: boolean, aBatch = 0, bBatch = 0): { a: number[]; b: number[] } {
  const a = transA ? [K, M] : [M, K];
  const b = transB ? [N, K] : [K, N];
  return { a: aBatch ? [aBatch, ...a] : a, b: bBatch ? [bBatch, ...b] : b };
}

const cases: Case[] = [];
// Sizes that are not multiples of any tile (1, 7, 33, 65), with every transpose combination.
for (const [M, N, K] of [[1, 1, 1], [7, 33, 65], [65, 7, 33], [33, 65, 7], [1, 65, 33], [65, 1, 7], [70, 130, 17]])
  for (const transA of [false, true])
    for (const transB of [false, true]) cases.push({ ...shapes(M, N, K, transA, transB), transA, transB });
// Batched: 3-D x 3-D, 3-D x 2-D and 2-D x 3-D (broadcast), each transpose combination.
for (const transA of [false, true])
  for (const transB of [false, true]) {
    cases.push({ ...shapes(7, 33, 5, transA, transB, 3, 3), transA, transB });
    cases.push({ ...shapes(33, 7, 65, transA, transB, 3, 0), transA, transB });
    cases.push({ ...shapes(5, 9, 13, transA, transB, 0, 3), transA, transB });
  }
// Fused epilogues.
for (const activation of ['none', 'relu', 'leakyRelu', 'sigmoid', 'tanh'] as ActivationName[]) {
  cases.push({ a: [33, 65], b: [65, 7], bias: true, activation });
  cases.push({ a: [2, 7, 33], b: [33, 65], bias: true, activation, transB: false });
}
// Long K with few outputs (split-K path) and tall-narrow results (computed transposed).
cases.push({ a: [3, 5000], b: [5000, 2], bias: true, activation: 'relu' });
cases.push({ a: [5000, 3], b: [5000, 9], transA: true });
cases.push({ a: [300, 40], b: [40, 2], bias: true, activation: 'sigmoid' });
cases.push({ a: [300, 40], b: [3, 40], transB: true, bias: true, activation: 'leakyRelu' });
// Row strides and K that are multiples of 4, for the vec4 reads of the 'subgroup-vec4' core (A rows
// over k; B over k or over columns), with rows and columns that are not multiples of its 16 x 64
// blocks; TT with M a multiple of 4 runs transposed there; a few rows with long K split K.
for (const transA of [false, true])
  for (const transB of [false, true]) cases.push({ ...shapes(33, 76, 68, transA, transB), transA, transB });
cases.push({ ...shapes(36, 76, 68, true, true), transA: true, transB: true, bias: true, activation: 'relu' });
cases.push({ ...shapes(20, 44, 36, false, false, 3, 3) });
cases.push({ ...shapes(20, 44, 36, false, true, 0, 3), transB: true, bias: true, activation: 'tanh' });
cases.push({ a: [20, 2000], b: [2000, 24], bias: true, activation: 'relu' });
// (K not a multiple of 4 with vec4 reads of B: the last group of 4 k steps is partial.)
cases.push({ a: [33, 17], b: [17, 76], bias: true, activation: 'sigmoid' });
// Empty reduction (the result is the epilogue of 0) and an empty result.
cases.push({ a: [3, 0], b: [0, 5], bias: true, activation: 'sigmoid' });
cases.push({ a: [5, 0], b: [0, 7], bias: true, activation: 'tanh' });
cases.push({ a: [0, 4], b: [4, 5] });

describe.each(variantRuns('matmul'))('matmul (%s, %s device)', (variant, dev) => {
  for (const c of cases) {
    const name = `a ${JSON.stringify(c.a)}${c.transA ? 'ᵀ' : ''} b ${JSON.stringify(c.b)}${c.transB ? 'ᵀ' : ''}${c.bias ? ' +bias' : ''}${c.activation ? ` ${c.activation}` : ''}`;
    it(name, async () => {
      const r = rng(c.a.length * 7 + c.b.reduce((x, y) => x * 3 + y, 0));
      const na = c.a.reduce((x, y) => x * y, 1);
      const nb = c.b.reduce((x, y) => x * y, 1);
      const a = randArray(r, na);
      const b = randArray(r, nb);
      const N = c.transB ? c.b[c.b.length - 2] : c.b[c.b.length - 1];
      const bias = c.bias ? randArray(r, N) : null;
      const at = engineFor(dev).fromArray(a, c.a);
      const bt = engineFor(dev).fromArray(b, c.b);
      const biast = bias ? engineFor(dev).fromArray(bias, [N]) : null;
      const opts: MatmulOptions = { transA: c.transA, transB: c.transB, bias: biast, activation: c.activation, slope: 0.2 };
      const y = kernels.get('matmul', engineFor(dev), variant)(at, bt, opts);
      const ref = matmulRef(a, c.a, b, c.b, { ...opts, bias });
      expect(y.shape).toEqual(ref.shape);
      expectClose(await y.toArray(), ref.data, TOL, name);
      for (const t of [at, bt, biast, y]) t?.dispose();
    });
  }
});

describe('matmul dispatch and errors', () => {
  it('matmul() runs the variant forced with kernels.use()', async () => {
    const a = engine.fromArray([1, 2, 3, 4], [2, 2]);
    const b = engine.fromArray([1, 0, 0, 1], [2, 2]);
    for (const v of kernels.variants('matmul')) {
      const y = kernels.withVariant('matmul', v, () => matmul(a, b));
      expect(Array.from(await y.toArray())).toEqual([1, 2, 3, 4]);
    }
  });

  it('the subgroups test device has the feature when the adapter offers it', () => {
    const info = sgEngine.adapter.info as GPUAdapterInfo & { subgroupMinSize?: number };
    expect(hasSubgroups(sgEngine)).toBe(sgEngine.adapter.features.has('subgroups') && (info.subgroupMinSize ?? 0) >= 8);
    expect(hasSubgroups(engine)).toBe(false);
  });

  it('rejects mismatched shapes with ShapeError naming the shapes', () => {
    const a = engine.zeros([3, 4]);
    const b = engine.zeros([5, 6]);
    expect(() => matmul(a, b)).toThrow(ShapeError);
    expect(() => matmul(a, b)).toThrow(/\[3, 4\].*\[5, 6\]/);
    expect(() => matmul(engine.zeros([2, 3, 4]), engine.zeros([3, 4, 5]))).toThrow(/batch/);
    expect(() => matmul(a, engine.zeros([4, 2]), { bias: engine.zeros([3]) })).toThrow(/bias/);
    expect(() => matmul(engine.zeros([3, 4], 'i32'), engine.zeros([4, 2]))).toThrow(/f32/);
  });

  it('a binding over the device limit raises TensorTooLargeError, not a truncated result', () => {
    // A tensor that claims more bytes than maxStorageBufferBindingSize (its storage record is faked so
    // the test needs no such allocation; dispatch checks the tensor's byte size before binding).
    const limit = engine.limits.maxStorageBufferBindingSize;
    const rows = Math.floor(limit / 4) + 1;
    const small = engine.zeros([1]);
    const storage = { ...small.storage, byteLength: rows * 4, refs: 1 };
    const col = new DeviceTensor(engine, storage, [rows, 1]);
    const row = new DeviceTensor(engine, storage, [1, rows]);
    for (const v of kernels.variants('matmul')) {
      // [1, rows] @ [rows, 1] -> [1, 1]: only the operands are large.
      expect(() => kernels.get('matmul', engine, v)(row, col)).toThrow(TensorTooLargeError);
      expect(() => kernels.get('matmul', engine, v)(row, row, { transB: true })).toThrow(/maxStorageBufferBindingSize/);
    }
  });
});
