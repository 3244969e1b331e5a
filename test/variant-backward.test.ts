// The per-call `variant` option of F.conv2d / F.linear / F.convTranspose2d reaches the backward ops
// (rule in the header comment of src/kernels/registry.ts): a backward op with a variant of that name
// runs it, one without runs its automatic choice. Spy variants count their calls and delegate to a
// built-in variant, so the gradients must still match the float64 CPU references (relative error 1e-4,
// float32 sums of at most a few hundred products, as in conv2d.test.ts and dense.test.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { F } from '../src/nn/index.js';
import { conv2dBackwardInputOp, conv2dBackwardWeightOp, conv2dForwardOp } from '../src/kernels/conv2d.js';
import { linearBackwardInputOp, linearBackwardWeightOp, linearForwardOp } from '../src/kernels/dense.js';
import { biasBackwardOp } from '../src/kernels/bias-grad.js';
import type { KernelFn, OpDescriptor } from '../src/kernels/registry.js';
import { conv2dBackwardInputRef, conv2dBackwardWeightRef, conv2dRef } from '../src/kernels/reference/conv2d.js';
import { biasGradRef, linearBackwardInputRef, linearBackwardWeightRef, linearForwardRef } from '../src/kernels/reference/dense.js';
import { expectClose, randArray, rng, testEngine } from './helpers.js';

const TOL = 1e-4;
let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const calls = new Map<string, number>();
/** Registers variant `name` of `op`: counts its calls, runs the op's variant `delegate`. */
function spy<Fn extends KernelFn>(op: OpDescriptor<Fn>, name: string, delegate: string): void {
  const run = (...args: Parameters<Fn>) => {
    calls.set(op.name, (calls.get(op.name) ?? 0) + 1);
    return op.get(undefined, delegate)(...args);
  };
  op.register(name, run as Fn, { description: `test spy: counts calls, runs '${delegate}'` });
}

// conv2d: all three ops have the spy; linear: the weight gradient has no variant of that name.
spy(conv2dForwardOp, 'spy', 'gemm');
spy(conv2dBackwardInputOp, 'spy', 'gemm');
spy(conv2dBackwardWeightOp, 'spy', 'gemm-tiled');
spy(linearForwardOp, 'spy', 'register');
spy(linearBackwardInputOp, 'spy', 'tiled');

describe('per-call variant in the backward', () => {
  it('F.conv2d({ variant }) runs the backward ops with the variant of that name; gradients match', async () => {
    calls.clear();
    const r = rng(71);
    const [xs, ws] = [[2, 3, 7, 6], [4, 3, 3, 3]];
    const p = { stride: [2, 1] as [number, number], padding: [1, 0] as [number, number] };
    const [xd, wd, bd] = [randArray(r, 2 * 3 * 7 * 6), randArray(r, 4 * 3 * 9), randArray(r, 4)];
    const x = engine.tensor(xd, xs, { requiresGrad: true });
    const w = engine.tensor(wd, ws, { requiresGrad: true });
    const b = engine.tensor(bd, [4], { requiresGrad: true });
    const y = F.conv2d(x, w, b, { stride: p.stride, padding: p.padding, variant: 'spy' });
    const gd = randArray(r, y.size);
    const g = engine.tensor(gd, y.shape);
    F.sum(F.mul(y, g)).backward();
    expect(Object.fromEntries(calls)).toEqual({ 'conv2d.forward': 1, 'conv2d.backwardInput': 1, 'conv2d.backwardWeight': 1 });
    expectClose(await y.toArray(), conv2dRef(xd, xs, wd, ws, bd, p), TOL, 'y');
    expectClose(await x.grad!.toArray(), conv2dBackwardInputRef(gd, wd, xs, ws, p), TOL, 'dx');
    expectClose(await w.grad!.toArray(), conv2dBackwardWeightRef(xd, gd, xs, ws, p), TOL, 'dw');
    // bias.backward has no 'spy' variant: its automatic choice ran.
    expectClose(await b.grad!.toArray(), biasGradRef(gd, y.shape), TOL, 'db');
  });

  it("F.linear({ variant }) falls back to the automatic choice where a backward op lacks the variant", async () => {
    calls.clear();
    const r = rng(72);
    const [n, inF, outF] = [5, 13, 6];
    const [xd, wd, bd] = [randArray(r, n * inF), randArray(r, outF * inF), randArray(r, outF)];
    const x = engine.tensor(xd, [n, inF], { requiresGrad: true });
    const w = engine.tensor(wd, [outF, inF], { requiresGrad: true });
    const b = engine.tensor(bd, [outF], { requiresGrad: true });
    const y = F.linear(x, w, b, { variant: 'spy' });
    const gd = randArray(r, n * outF);
    F.sum(F.mul(y, engine.tensor(gd, [n, outF]))).backward();
    expect(Object.fromEntries(calls)).toEqual({ 'linear.forward': 1, 'linear.backwardInput': 1 });
    expect(linearBackwardWeightOp.variants()).not.toContain('spy');
    expectClose(await y.toArray(), linearForwardRef(xd, wd, bd, n, inF, outF), TOL, 'y');
    expectClose(await x.grad!.toArray(), linearBackwardInputRef(gd, wd, n, inF, outF), TOL, 'dx');
    expectClose(await w.grad!.toArray(), linearBackwardWeightRef(xd, gd, n, inF, outF), TOL, 'dw');
    expectClose(await b.grad!.toArray(), biasGradRef(gd, [n, outF]), TOL, 'db');
  });

  it("a forward-only variant ('direct') gives correct gradients through the backward ops' automatic choice", async () => {
    expect(conv2dBackwardInputOp.variants()).not.toContain('direct');
    const r = rng(73);
    const [xs, ws] = [[1, 2, 6, 6], [3, 2, 3, 3]];
    const p = { stride: [1, 1] as [number, number], padding: [1, 1] as [number, number] };
    const [xd, wd] = [randArray(r, 72), randArray(r, 54)];
    const x = engine.tensor(xd, xs, { requiresGrad: true });
    const w = engine.tensor(wd, ws, { requiresGrad: true });
    F.sum(F.conv2d(x, w, null, { padding: 1, variant: 'direct' })).backward();
    const ones = new Float32Array(3 * 36).fill(1);
    expectClose(await x.grad!.toArray(), conv2dBackwardInputRef(ones, wd, xs, ws, p), TOL, 'dx');
    expectClose(await w.grad!.toArray(), conv2dBackwardWeightRef(xd, ones, xs, ws, p), TOL, 'dw');
  });

  it('an unknown forward variant is an error, as before', () => {
    const x = engine.tensor(new Float32Array(16), [1, 1, 4, 4]);
    const w = engine.tensor(new Float32Array(9), [1, 1, 3, 3]);
    expect(() => F.conv2d(x, w, null, { variant: 'no-such-variant' })).toThrow(/has no variant 'no-such-variant'/);
    expect(biasBackwardOp.variants()).not.toContain('spy');
  });
});
