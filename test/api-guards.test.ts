// The public tensor API under bad arguments: wrong shapes, non-numbers, NaN/Inf where they are not
// data, i32/f32 mix-ups, out-of-range class labels, tensors of another engine. Each call must fail at
// once with a WgslNnError subclass whose message names the problem, before any kernel is recorded
// (engine.dispatchCount unchanged), leak nothing (tensors made inside the failing tidy() are freed),
// and leave the engine working: a normal computation afterwards gives the right values.
// NaN and Inf inside an f32 tensor are data, not errors: they must go through unchanged.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import { InvalidArgumentError, ShapeError, TensorTooLargeError, WgslNnError } from '../src/gpu/errors.js';
import { binary } from '../src/kernels/elementwise.js';
import * as F from '../src/nn/functional.js';
import '../src/nn/tensor.js';
import { testEngine } from './helpers.js';

let engine: Engine;
let other: Engine;
beforeAll(async () => {
  engine = await testEngine();
  other = await Engine.create({ poisonAllocations: true });
});
afterAll(() => {
  engine.destroy();
  other.destroy();
});

const f32 = (data: number[], shape: number[]) => engine.tensor(data, shape);
const i32 = (data: number[], shape: number[]) => engine.tensor(new Int32Array(data), shape);
/** 2*x + 1 of [1, 2, 3] (a check that the engine still computes). */
async function healthy(): Promise<void> {
  const x = engine.tensor([1, 2, 3], [3]);
  const y = engine.tidy(() => F.add(F.mul(x, 2), 1));
  expect(Array.from(await y.toArray())).toEqual([3, 5, 7]);
  x.dispose();
  y.dispose();
}

type ErrorClass = new (...args: never[]) => Error;

/**
 * `fn` (run inside tidy()) throws `cls` with a message matching `message`; no kernel was recorded
 * (beyond the `kernelsBefore` that valid ops in `fn` record before the bad call), no GPU memory is left
 * in use, and the engine still computes.
 */
async function expectRejected(fn: () => unknown, cls: ErrorClass, message: RegExp, kernelsBefore = 0): Promise<void> {
  await engine.sync();
  const inUse = engine.memory().bytesInUse;
  const dispatches = engine.dispatchCount;
  let thrown: unknown = 'nothing';
  try {
    engine.tidy(() => fn());
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(cls);
  expect(thrown).toBeInstanceOf(WgslNnError);
  expect((thrown as Error).message).toMatch(message);
  expect(engine.dispatchCount - dispatches, 'kernels recorded before the error').toBe(kernelsBefore);
  await engine.sync();
  expect(engine.memory().bytesInUse, 'tensors of the failing call leaked').toBe(inUse);
  await healthy();
}

describe('tensor creation', () => {
  it.each<[string, () => unknown, ErrorClass, RegExp]>([
    ['data length does not match the shape', () => engine.tensor([1, 2, 3], [2, 2]), ShapeError, /3 elements but shape \[2, 2\] needs 4/],
    ['negative dimension', () => engine.tensor([1, 2], [-1, -2]), ShapeError, /invalid shape \[-1, -2\]: dimension 0 is -1/],
    ['non-integer dimension', () => engine.tensor([1, 2], [0.5, 4]), ShapeError, /dimension 0 is 0\.5/],
    ['NaN dimension', () => engine.tensor([1, 2], [2, NaN]), ShapeError, /dimension 1 is NaN/],
    ['infinite dimension', () => engine.tensor([1, 2], [Infinity]), ShapeError, /dimension 0 is Infinity/],
    ['a string as a dimension', () => engine.tensor([1, 2], ['2' as unknown as number]), ShapeError, /dimension 0 is the string "2"/],
    ['a number as the shape', () => engine.tensor([1, 2], 2 as unknown as number[]), ShapeError, /shape must be an array of dimensions, got 2/],
    ['negative dimension in zeros', () => engine.zerosTensor([3, -3]), ShapeError, /dimension 1 is -3/],
    ['a shape over the device limits', () => engine.zerosTensor([1e6, 1e6]), TensorTooLargeError, /cannot allocate .*GiB.*\(maxBufferSize\)/],
    ['null data', () => engine.tensor(null as unknown as number[], [2]), InvalidArgumentError, /data must be an array or a typed array of numbers, got null/],
    ['a string as data', () => engine.tensor('ab' as unknown as number[], [2]), InvalidArgumentError, /got a string/],
    ['strings in the data', () => engine.tensor(['1', 'x'] as unknown as number[], [2]), InvalidArgumentError, /data\[0\] is the string "1", not a number/],
    ['undefined in the data', () => engine.tensor([1, undefined] as unknown as number[], [2]), InvalidArgumentError, /data\[1\] is undefined, not a number/],
    ['BigInt64Array data', () => engine.tensor(new BigInt64Array(2) as unknown as number[], [2]), InvalidArgumentError, /BigInt64Array/],
    ['an unknown dtype', () => engine.tensor([1, 2], [2], { dtype: 'f16' as 'f32' }), InvalidArgumentError, /dtype must be 'f32' or 'i32', got the string "f16"/],
    ['a fraction into an i32 tensor', () => engine.tensor([1, 2.5], [2], { dtype: 'i32' }), InvalidArgumentError, /data\[1\] = 2\.5 cannot be stored in an i32 tensor/],
    ['NaN into an i32 tensor', () => engine.tensor(new Float32Array([NaN]), [1], { dtype: 'i32' }), InvalidArgumentError, /data\[0\] = NaN/],
    ['2^31 into an i32 tensor', () => engine.tensor([2 ** 31], [1], { dtype: 'i32' }), InvalidArgumentError, /2147483648 cannot be stored in an i32 tensor/],
    ['full() of an i32 tensor with 0.5', () => engine.full([2], 0.5, 'i32'), InvalidArgumentError, /fill value 0\.5 cannot be stored in an i32 tensor/],
    ['full() with a string', () => engine.full([2], '1' as unknown as number), InvalidArgumentError, /fill value must be a number/],
    ['an i32 tensor that requires grad', () => engine.tensor(new Int32Array([1]), [1], { requiresGrad: true }), WgslNnError, /only f32 tensors can require gradients/],
  ])('%s', async (_name, fn, cls, message) => {
    await expectRejected(fn, cls, message);
  });

  it('NaN and Inf in f32 data are data: stored and read back unchanged', async () => {
    const t = engine.tensor([NaN, Infinity, -Infinity, -0, 1e-45, 3.4e38], [2, 3]);
    const back = Array.from(await t.toArray());
    expect(back.slice(0, 3)).toEqual([NaN, Infinity, -Infinity]);
    expect(Object.is(back[3], -0)).toBe(true);
    expect(back.slice(4)).toEqual([Math.fround(1e-45), Math.fround(3.4e38)]);
    // and they flow through ops as IEEE arithmetic says
    const y = F.mul(t, 2);
    expect(Array.from(await y.toArray()).slice(0, 3)).toEqual([NaN, Infinity, -Infinity]);
    t.dispose();
    y.dispose();
  });

  it('integers in any array type become i32; an Int32Array may become f32', async () => {
    const a = engine.tensor([3, -4, 2 ** 31 - 1, -(2 ** 31)], [4], { dtype: 'i32' });
    expect(a.dtype).toBe('i32');
    expect(Array.from(await a.toArray())).toEqual([3, -4, 2 ** 31 - 1, -(2 ** 31)]);
    const b = engine.tensor(new Int32Array([5, -6]), [2], { dtype: 'f32' });
    expect(b.dtype).toBe('f32');
    expect(Array.from(await b.toArray())).toEqual([5, -6]);
    a.dispose();
    b.dispose();
  });
});

describe('ops', () => {
  const logits = () => f32([1, 2, 3, 1, 0, -1], [2, 3]);
  it.each<[string, () => unknown, ErrorClass, RegExp, number?]>([
    ['add with shapes that do not broadcast', () => F.add(f32([1, 2, 3, 4, 5, 6], [2, 3]), f32([1, 2, 3, 4], [4])), ShapeError, /cannot broadcast shapes \[2, 3\] and \[4\]/],
    ['add f32 + i32', () => F.add(f32([1, 2], [2]), i32([1, 2], [2])), ShapeError, /float32.*i32/],
    ['relu of an i32 tensor', () => F.relu(i32([1, -2], [2])), ShapeError, /relu: expected an f32 tensor, got i32 \[2\]/],
    ['sigmoid of an i32 tensor', () => F.sigmoid(i32([1, -2], [2])), ShapeError, /sigmoid: expected an f32 tensor/],
    ['leakyRelu with a NaN slope', () => F.leakyRelu(f32([1, -2], [2]), NaN), InvalidArgumentError, /leakyRelu: negative slope must be a finite number, got NaN/],
    ['linear with the wrong in_features', () => F.linear(f32([1, 2, 3], [1, 3]), f32([1, 2, 3, 4], [2, 2])), ShapeError, /in_features=2/],
    ['conv2d with the wrong channel count', () => F.conv2d(engine.zerosTensor([1, 2, 4, 4]), engine.zerosTensor([1, 3, 3, 3])), ShapeError, /2 channels but weight \[1, 3, 3, 3\] expects 3/],
    ['conv2d of a 3-D input', () => F.conv2d(engine.zerosTensor([2, 4, 4]), engine.zerosTensor([1, 2, 3, 3])), ShapeError, /must be 4-D/],
    ['conv2d with an i32 input', () => F.conv2d(i32(new Array(32).fill(1), [1, 2, 4, 4]), engine.zerosTensor([1, 2, 3, 3])), ShapeError, /i32; f32 is required/],
    ['conv2d with stride 0', () => F.conv2d(engine.zerosTensor([1, 2, 4, 4]), engine.zerosTensor([1, 2, 3, 3]), null, { stride: 0 }), ShapeError, /stride must be/],
    ['crossEntropy with f32 labels', () => F.crossEntropy(logits(), f32([0, 2], [2])), ShapeError, /labels must be an i32 tensor/],
    ['crossEntropy with one label for two rows', () => F.crossEntropy(logits(), i32([0], [1])), ShapeError, /1 labels for 2 rows/],
    ['crossEntropy with label 3 of 3 classes', () => F.crossEntropy(logits(), i32([0, 3], [2])), InvalidArgumentError, /crossEntropy: labels must be class indices in \[0, 3\).*got labels from 0 to 3/],
    ['crossEntropy with label -1', () => F.crossEntropy(logits(), i32([-1, 0], [2])), InvalidArgumentError, /got labels from -1 to 0/],
    ['crossEntropy with a huge label', () => F.crossEntropy(logits(), engine.tensor([1, 2 ** 31 - 1], [2], { dtype: 'i32' })), InvalidArgumentError, /from 1 to 2147483647/],
    ['crossEntropy with out-of-range labels seen through a reshape', () => F.crossEntropy(logits(), F.reshape(i32([0, 7], [2, 1]), [2])), InvalidArgumentError, /from 0 to 7/],
    ['binaryCrossEntropy with a target of another size', () => F.binaryCrossEntropy(f32([0.5, 0.2], [2]), f32([1], [1])), ShapeError, /differ in size/],
    ['softmax over dim 0', () => F.softmax(f32([1, 2], [1, 2]), 0), ShapeError, /only the last dimension/],
    ['reshape to another size', () => F.reshape(f32([1, 2], [2]), [3]), ShapeError, /cannot view \[2\] as \[3\]/],
    ['sum over a dimension that does not exist', () => F.sum(f32([1, 2], [2]), 5), ShapeError, /dimension 5 out of range/],
    ['dropout with p = NaN', () => F.dropout(f32([1, 2], [2]), NaN), WgslNnError, /p must be in \[0, 1\), got NaN/],
    ['an op on tensors of two engines', () => F.add(f32([1, 2], [2]), other.tensor([1, 2], [2])), InvalidArgumentError, /another engine/],
    ['backward() with a gradient of another shape', () => F.mul(engine.tensor([1, 2], [2], { requiresGrad: true }), 2).backward(f32([1, 2, 3], [3])), ShapeError, /gradient \[3\] does not match tensor \[2\]/, 1],
    ['backward() of a tensor that needs no gradient', () => F.mul(f32([1, 2], [2]), 2).backward(), WgslNnError, /does not require grad/, 1],
  ])('%s', async (_name, fn, cls, message, kernelsBefore) => {
    await expectRejected(fn, cls, message, kernelsBefore);
  });

  it('valid labels give the right loss (float64 reference), and the labels check costs no readback', async () => {
    const z = [1, 2, 3, 1, 0, -1];
    const labels = [2, 0];
    let ref = 0;
    for (let r = 0; r < 2; r++) {
      const row = z.slice(3 * r, 3 * r + 3);
      const m = Math.max(...row);
      ref += m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) - row[labels[r]];
    }
    ref /= 2;
    const submits = engine.submitCount;
    const loss = engine.tidy(() => F.crossEntropy(f32(z, [2, 3]), i32(labels, [2])));
    expect(engine.submitCount, 'validating the labels must not wait for the GPU').toBe(submits);
    expect(Math.abs((await loss.item()) - ref)).toBeLessThan(1e-6);
    loss.dispose();
  });

  it('a rejected op does not take down the work already recorded in the same batch', async () => {
    const a = f32([1, 2, 3], [3]);
    const pending = F.mul(a, 3); // recorded, not yet submitted
    expect(() => F.add(a, other.tensor([1, 2, 3], [3]))).toThrow(InvalidArgumentError);
    expect(() => F.crossEntropy(f32([1, 2], [1, 2]), i32([9], [1]))).toThrow(InvalidArgumentError);
    // A kernel called directly (below F) is stopped by engine.dispatch before it records anything.
    const foreign = other.fromArray(new Float32Array([1, 2, 3]), [3]);
    expect(() => binary(a.value, foreign, 'add')).toThrow(/elementwise.*belongs to another engine/);
    expect(Array.from(await pending.toArray())).toEqual([3, 6, 9]);
    for (const t of [a, pending, foreign]) t.dispose();
  });

  it('after all of the above the engine trains a step as usual', async () => {
    // One SGD-like step by hand: w -= 0.5 * d/dw mean((x w^T - y)^2), checked against float64.
    const w = engine.tensor([0.5, -0.25], [1, 2], { requiresGrad: true });
    const x = f32([1, 2, -1, 3], [2, 2]);
    const y = f32([1, -1], [2, 1]);
    const loss = engine.tidy(() => {
      const d = F.sub(F.linear(x, w), y);
      const l = F.mean(F.mul(d, d));
      l.backward();
      return l;
    });
    const g = Array.from(await w.grad!.toArray());
    // d = [0.5*1 - 0.25*2 - 1, 0.5*-1 - 0.25*3 + 1] = [-1, -0.25]; dL/dw = 2/2 * sum_i d_i x_i
    expect(g[0]).toBeCloseTo(-1 * 1 + -0.25 * -1, 6);
    expect(g[1]).toBeCloseTo(-1 * 2 + -0.25 * 3, 6);
    expect(await loss.item()).toBeCloseTo((1 + 0.0625) / 2, 6);
    for (const t of [w, x, y, loss]) t.dispose();
  });
});
