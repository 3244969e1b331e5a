// Tensors over one storage binding (src/kernels/batch-split.ts): the kernels' wrappers split them along
// the batch (rows, elements) transparently to F and nn.
//
//  - The seed CNN's own configuration: 224x224 grayscale, batch 32, whose first conv output
//    [32,32,222,222] is 192.5 MiB, over lavapipe's 128 MiB binding limit. Its first block (conv 1->32
//    3x3 + ReLU, max-pool 2) and a loss, forward and backward, match the same computation done as two
//    half batches (each of which fits one binding).
//  - Every split op against the unsplit op on small shapes: an engine with an artificially low binding
//    limit (maxBindingBytes 4 KiB) and the usual hardware offset alignment (256 bytes) splits them into
//    aligned ranges (units of whole 256-byte multiples) or, for odd unit sizes, misaligned ranges that
//    go through scratch copies; a plain engine computes the reference.
//
// Tolerances (relative error max|got - exp| / max|exp|; both sides float32 on the GPU):
//  - ops independent per unit (conv forward and d/dx, pooling, activations, elementwise, batch-norm
//    eval apply, softmax, loss gradients): 1e-6. Each output is the same float32 computation; only a
//    GEMM's choice of form or workgroup size may differ between a range and the whole batch. Dropout
//    masks and pooling arg-max indices: exactly equal.
//  - ops reducing over the split axis (conv and dense d/dw, bias grad, batch-norm statistics and sums,
//    reductions, losses): 1e-5 (small shapes): the partial sums are added in another order. Batch-norm
//    training y (1e-5) and its backward (1e-4) inherit that from the batch statistics and sums.
//  - the 224x224 block: forward outputs 1e-6 and loss 1e-5; gradients 1e-4 (float32 sums over
//    32*222*222 = 1.6M products for the conv weight and bias, in another grouping than two halves).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import type { DeviceTensor } from '../src/gpu/device-tensor.js';
import { TensorTooLargeError } from '../src/gpu/errors.js';
import '../src/kernels/index.js';
import { kernels } from '../src/kernels/registry.js';
import { splitRanges } from '../src/kernels/batch-split.js';
import * as F from '../src/nn/functional.js';
import { expectClose, randArray, rng, testEngine } from './helpers.js';

const MAP_TOL = 1e-6;
const SUM_TOL = 1e-5;

describe('the seed CNN at 224x224, batch 32', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await testEngine();
  });
  afterAll(() => engine.destroy());

  it('first block (conv 1->32 + ReLU, max-pool 2) and a loss: forward and backward match two half batches', async () => {
    const N = 32;
    const S = 224;
    const C = 32;
    const P = (S - 2) / 2; // pooled size 111
    const convBytes = N * C * (S - 2) * (S - 2) * 4;
    // On lavapipe (128 MiB) the conv output must be split; a device that binds it whole runs the same code unsplit.
    if (engine.info.software) expect(convBytes).toBeGreaterThan(engine.limits.maxStorageBufferBindingSize);
    expect(convBytes / 2).toBeLessThanOrEqual(engine.limits.maxStorageBufferBindingSize);
    const r = rng(224);
    const xData = randArray(r, N * S * S);
    const wData = randArray(r, C * 9, 0.5);
    const bData = randArray(r, C, 0.1);
    const features = C * P * P;
    const lwData = randArray(r, features, 1e-3);
    const lbData = randArray(r, 1, 0.1);
    const target = Float32Array.from({ length: N }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0);

    /** Images [from, from + n): pooled output, loss and gradients (the loss is the mean over those images). */
    async function run(from: number, n: number) {
      const params = {
        w: engine.tensor(wData, [C, 1, 3, 3], { requiresGrad: true }),
        b: engine.tensor(bData, [C], { requiresGrad: true }),
        lw: engine.tensor(lwData, [1, features], { requiresGrad: true }),
        lb: engine.tensor(lbData, [1], { requiresGrad: true }),
      };
      const out = engine.tidy(() => {
        const x = engine.tensor(xData.subarray(from * S * S, (from + n) * S * S), [n, 1, S, S]);
        const t = engine.tensor(target.subarray(from, from + n), [n, 1]);
        const pooled = F.maxPool2d(F.conv2d(x, params.w, params.b, { activation: 'relu' }), { kernelSize: 2 });
        const loss = F.binaryCrossEntropyWithLogits(F.linear(F.flatten(pooled), params.lw, params.lb), t);
        loss.backward();
        return { pooled, loss };
      });
      const result = {
        pooled: (await out.pooled.toArray()) as Float32Array,
        loss: (await out.loss.item()),
        grads: Object.fromEntries(await Promise.all(Object.entries(params).map(async ([k, p]) => [k, (await p.grad!.toArray()) as Float32Array] as const))),
      };
      out.pooled.dispose();
      out.loss.dispose();
      for (const p of Object.values(params)) p.dispose();
      return result;
    }

    const full = await run(0, N);
    const a = await run(0, N / 2);
    const b = await run(N / 2, N / 2);
    const half = full.pooled.length / 2;
    expectClose(full.pooled.subarray(0, half), a.pooled, MAP_TOL, 'pooled output, first half');
    expectClose(full.pooled.subarray(half), b.pooled, MAP_TOL, 'pooled output, second half');
    expectClose([full.loss], [(a.loss + b.loss) / 2], 1e-5, 'loss');
    for (const k of ['w', 'b', 'lw', 'lb']) {
      const mean = Float64Array.from(a.grads[k], (v, i) => (v + b.grads[k][i]) / 2);
      expectClose(full.grads[k], mean, 1e-4, `gradient of ${k}`);
    }
  });
});

// ------------------------------------------------------------------------------------------------
// Every split op against the unsplit op, on small shapes.

/** Binding limit of the splitting engine: 1024 floats. */
const LIMIT = 4096;
const ALIGN = 256;

type Host = { data: Float32Array | Int32Array; shape: number[] };
type Outputs = DeviceTensor | Record<string, DeviceTensor>;

describe('ops over one binding, split (maxBindingBytes 4 KiB, offsets aligned to 256 bytes) vs unsplit', () => {
  let plain: Engine;
  let split: Engine;
  beforeAll(async () => {
    plain = await testEngine();
    split = await Engine.create({ poisonAllocations: true, maxBindingBytes: LIMIT, bindingOffsetAlignment: ALIGN });
  });
  afterAll(() => {
    plain.destroy();
    split.destroy();
  });

  const f = (r: ReturnType<typeof rng>, shape: number[], scale = 1): Host => ({ data: randArray(r, shape.reduce((a, b) => a * b, 1), scale), shape });
  const i32 = (values: number[], shape: number[]): Host => ({ data: Int32Array.from(values), shape });

  /** Runs `op` on both engines with the same inputs; returns the outputs read back and the dispatches each recorded. */
  async function both(inputs: Record<string, Host>, op: (e: Engine, t: Record<string, DeviceTensor>) => Outputs) {
    const results: { values: Record<string, Float32Array | Int32Array>; dispatches: number }[] = [];
    for (const e of [plain, split]) {
      const t = Object.fromEntries(Object.entries(inputs).map(([k, h]) => [k, e.fromArray(h.data, h.shape)]));
      const d0 = e.dispatchCount;
      const out = op(e, t);
      const dispatches = e.dispatchCount - d0;
      const named: Record<string, DeviceTensor> = 'engine' in out ? { out: out as DeviceTensor } : (out as Record<string, DeviceTensor>);
      const values: Record<string, Float32Array | Int32Array> = {};
      for (const [k, v] of Object.entries(named)) values[k] = await v.toArray();
      for (const v of new Set([...Object.values(named), ...Object.values(t)])) v.dispose();
      results.push({ values, dispatches });
    }
    return { plain: results[0], split: results[1] };
  }

  /** Asserts the split engine split the op (more dispatches) and matches the plain engine within `tol` per output. */
  async function expectSame(what: string, inputs: Record<string, Host>, op: (e: Engine, t: Record<string, DeviceTensor>) => Outputs, tol: number | Record<string, number>) {
    const r = await both(inputs, op);
    expect(r.split.dispatches, `${what}: dispatches split vs unsplit`).toBeGreaterThan(r.plain.dispatches);
    for (const [k, exp] of Object.entries(r.plain.values)) {
      const got = r.split.values[k];
      const t = typeof tol === 'number' ? tol : tol[k];
      if (exp instanceof Int32Array) expect(Array.from(got), `${what}: ${k}`).toEqual(Array.from(exp));
      else expectClose(got, exp, t, `${what}: ${k}`);
    }
  }

  it('splitRanges: ranges fit the limit, start aligned, cover the axis; odd units fall back to misaligned ranges; one unit over the limit is an error', () => {
    const check = (units: number, unitFloats: number[], aligned: boolean) => {
      const ts = unitFloats.map((u) => split.empty([units, u]));
      const ranges = splitRanges(split, 'test', units, ts.map((t, i) => ({ tensor: t, unit: unitFloats[i], name: `t${i}` })));
      expect(ranges[0].start).toBe(0);
      ranges.forEach((r, i) => {
        if (i > 0) expect(r.start).toBe(ranges[i - 1].start + ranges[i - 1].count);
        for (const u of unitFloats) {
          expect(r.count * u * 4).toBeLessThanOrEqual(LIMIT);
          if (aligned) expect((r.start * u * 4) % ALIGN).toBe(0);
        }
      });
      expect(ranges.at(-1)!.start + ranges.at(-1)!.count).toBe(units);
      ts.forEach((t) => t.dispose());
      return ranges;
    };
    expect(check(10, [64], true).map((r) => r.count)).toEqual([10]); // 2.5 KiB: fits one binding
    expect(check(40, [64], true).map((r) => r.count)).toEqual([16, 16, 8]); // 256 B units: 16 per 4 KiB
    expect(check(40, [64, 96], true).map((r) => r.count)).toEqual([10, 10, 10, 10]); // 384 B units: even counts, at most 10
    expect(check(500, [3], true).map((r) => r.count)).toEqual([320, 180]); // 12 B units: multiples of 64 units
    check(30, [105], false); // 420 B units: aligned steps of 64 units would need 26 KiB, so 9 units per range
    const big = split.empty([3, 1025]);
    expect(() => splitRanges(split, 'op', 3, [{ tensor: big, unit: 1025, name: 'x' }])).toThrow(TensorTooLargeError);
    expect(() => splitRanges(split, 'op', 3, [{ tensor: big, unit: 1025, name: 'x' }])).toThrow(/op: x \[3, 1025\].*one sample.*4\.0 KiB/);
    big.dispose();
  });

  it('a single sample over the limit raises TensorTooLargeError naming the tensor and the limit', async () => {
    const x = split.tensor(randArray(rng(1), 2 * 3 * 20 * 20), [2, 3, 20, 20]); // 4.7 KiB per image
    const w = split.tensor(randArray(rng(2), 4 * 3 * 3 * 3), [4, 3, 3, 3]);
    expect(() => F.conv2d(x, w)).toThrow(TensorTooLargeError);
    expect(() => F.conv2d(x, w)).toThrow(/x \[2, 3, 20, 20\].*maxStorageBufferBindingSize of 4\.0 KiB/);
    x.dispose();
    w.dispose();
  });

  // Convolutions: an odd image size (1188 B per input image: misaligned ranges through scratch copies)
  // and one of whole 256-byte blocks (aligned views), stride 1 and 2.
  const convCases = [
    { x: [5, 3, 9, 11], w: [4, 3, 3, 3], stride: [1, 1] as [number, number], padding: [1, 1] as [number, number] },
    { x: [6, 4, 8, 8], w: [8, 4, 3, 3], stride: [1, 1] as [number, number], padding: [1, 1] as [number, number] },
    { x: [7, 2, 11, 9], w: [3, 2, 4, 3], stride: [2, 2] as [number, number], padding: [1, 0] as [number, number] },
  ];
  for (const c of convCases) {
    const p = { stride: c.stride, padding: c.padding };
    const y = [c.x[0], c.w[0], Math.floor((c.x[2] + 2 * c.padding[0] - c.w[2]) / c.stride[0]) + 1, Math.floor((c.x[3] + 2 * c.padding[1] - c.w[3]) / c.stride[1]) + 1];
    // The transposed conv with weight c.w ([Cin = c.w[0], Cout = c.w[1], kH, kW]) maps y's shape to this one.
    const tOut = [y[0], c.w[1], (y[2] - 1) * c.stride[0] - 2 * c.padding[0] + c.w[2], (y[3] - 1) * c.stride[1] - 2 * c.padding[1] + c.w[3]];
    it(`conv2d x ${JSON.stringify(c.x)} w ${JSON.stringify(c.w)} s${c.stride}: forward, d/dx, d/dw of every variant; conv-transpose2d`, async () => {
      const r = rng(c.x[0] * 100 + c.w[0]);
      const inputs = { x: f(r, c.x), w: f(r, c.w), b: f(r, [c.w[0]]), dy: f(r, y), dt: f(r, tOut) };
      for (const v of kernels.variants('conv2d.forward'))
        await expectSame(`forward ${v}`, inputs, (e, t) => kernels.get('conv2d.forward', e, v)(t.x, t.w, t.b, { ...p, activation: 'leakyRelu', slope: 0.1 }), MAP_TOL);
      for (const v of kernels.variants('conv2d.backwardInput'))
        await expectSame(`d/dx ${v}`, inputs, (e, t) => kernels.get('conv2d.backwardInput', e, v)(t.dy, t.w, c.x, p), MAP_TOL);
      for (const v of kernels.variants('conv2d.backwardWeight'))
        await expectSame(`d/dw ${v}`, inputs, (e, t) => kernels.get('conv2d.backwardWeight', e, v)(t.x, t.dy, c.w, p), SUM_TOL);
      // Conv-transpose runs on the same GEMMs (its input of y's shape, its output of shape tOut).
      await expectSame('convTranspose2d forward', inputs, (e, t) => kernels.get('convTranspose2d.forward', e)(t.dy, t.w, null, { ...p, activation: 'tanh' }), MAP_TOL);
      await expectSame('convTranspose2d d/dx', inputs, (e, t) => kernels.get('convTranspose2d.backwardInput', e)(t.dt, t.w, y, p), MAP_TOL);
      await expectSame('convTranspose2d d/dw', inputs, (e, t) => kernels.get('convTranspose2d.backwardWeight', e)(t.dy, t.dt, c.w, p), SUM_TOL);
    });
  }

  it('dense: forward (bias, activation), d/dx, d/dw', async () => {
    const r = rng(37);
    const inputs = { x: f(r, [60, 37]), w: f(r, [5, 37]), b: f(r, [5]), dy: f(r, [60, 5]) };
    // dy [60, 5] fits one binding: d/dx and d/dw split because of x and dx.
    await expectSame('linear forward', inputs, (e, t) => kernels.get('linear.forward', e)(t.x, t.w, t.b, { activation: 'sigmoid' }), MAP_TOL);
    await expectSame('linear d/dx', inputs, (e, t) => kernels.get('linear.backwardInput', e)(t.dy, t.w), MAP_TOL);
    await expectSame('linear d/dw', inputs, (e, t) => kernels.get('linear.backwardWeight', e)(t.x, t.dy), SUM_TOL);
  });

  it('max pooling (2x2 stride 2, 3x3 stride 2): forward with argmax, backward', async () => {
    const r = rng(5);
    for (const [k, s] of [[2, 2], [3, 2]]) {
      const pp = { kernel: [k, k] as [number, number], stride: [s, s] as [number, number] };
      const xShape = [6, 3, 10, 13];
      const yShape = [6, 3, Math.floor((10 - k) / s) + 1, Math.floor((13 - k) / s) + 1];
      const inputs = { x: f(r, xShape), dy: f(r, yShape) };
      await expectSame(`pool ${k}/${s} forward`, inputs, (e, t) => kernels.get('maxPool2d.forward', e)(t.x, pp), MAP_TOL);
      await expectSame(`pool ${k}/${s} backward`, inputs, (e, t) => {
        const { y, argmax } = kernels.get('maxPool2d.forward', e)(t.x, pp);
        y.dispose();
        const dx = kernels.get('maxPool2d.backward', e)(t.dy, argmax, xShape, pp);
        argmax.dispose();
        return dx;
      }, MAP_TOL);
    }
  });

  it('activations forward and backward, elementwise ops with broadcasting, dropout', async () => {
    const r = rng(9);
    const inputs = { x: f(r, [7, 13, 31]), dy: f(r, [7, 13, 31]) };
    for (const v of kernels.variants('activation.forward'))
      for (const a of ['relu', 'leakyRelu', 'sigmoid', 'tanh'] as const) {
        await expectSame(`${a} forward (${v})`, inputs, (e, t) => kernels.get('activation.forward', e, v)(t.x, a, 0.2), MAP_TOL);
        await expectSame(`${a} backward (${v})`, inputs, (e, t) => kernels.get('activation.backward', e, v)(t.x, t.dy, a, 0.2), MAP_TOL);
      }
    const four = { a: f(r, [6, 5, 7, 9]), chan: f(r, [1, 5, 1, 1]), sample: f(r, [6, 1, 1, 1]), one: f(r, [1, 5, 7, 9]), s: f(r, [1]) };
    for (const v of kernels.variants('elementwise.binary')) {
      const bin = (e: Engine) => kernels.get('elementwise.binary', e, v);
      await expectSame(`${v} add channel bias`, four, (e, t) => bin(e)(t.a, t.chan, 'add'), MAP_TOL);
      await expectSame(`${v} mul per sample`, four, (e, t) => bin(e)(t.sample, t.a, 'mul'), MAP_TOL);
      await expectSame(`${v} sub broadcast along the batch`, four, (e, t) => bin(e)(t.one, t.a, 'sub'), MAP_TOL);
      await expectSame(`${v} div same shape`, four, (e, t) => bin(e)(t.a, t.a, 'div'), MAP_TOL);
    }
    await expectSame('scale', four, (e, t) => kernels.get('elementwise.scale', e)(t.a, -1.5, 0.25), MAP_TOL);
    await expectSame('scaleByScalar', four, (e, t) => kernels.get('elementwise.scaleByScalar', e)(t.a, t.s, 2), MAP_TOL);
    // The mask is a function of (seed, element index): bit-identical across the ranges.
    await expectSame('dropout forward', { x: f(r, [3001]) }, (e, t) => kernels.get('dropout.forward', e)(t.x, 0.3, 2 ** 33 + 5), 0);
    await expectSame('dropout backward', { x: f(r, [3001]) }, (e, t) => kernels.get('dropout.backward', e)(t.x, 0.3, 77), 0);
  });

  for (const variant of kernels.variants('batchNorm2d.trainForward')) {
    it(`batch norm (${variant}): training forward with running statistics, backward; eval forward and backward`, async () => {
      const r = rng(11);
      const shape = [6, 3, 9, 11];
      const inputs = { x: f(r, shape, 3), dy: f(r, shape), g: f(r, [3]), b: f(r, [3]), rm: f(r, [3], 0.1), rv: { data: Float32Array.from([0.5, 1, 2]), shape: [3] } };
      const bnp = { momentum: 0.3, eps: 1e-5 };
      await expectSame('train forward', inputs, (e, t) => {
        const o = kernels.get('batchNorm2d.trainForward', e, variant)(t.x, t.g, t.b, t.rm, t.rv, bnp);
        return { y: o.y, mean: o.mean, invStd: o.invStd, runningMean: t.rm, runningVar: t.rv };
      }, { y: MAP_TOL * 10, mean: SUM_TOL, invStd: SUM_TOL, runningMean: SUM_TOL, runningVar: SUM_TOL });
      await expectSame('backward', inputs, (e, t) => {
        const o = kernels.get('batchNorm2d.trainForward', e, variant)(t.x, t.g, t.b, t.rm, t.rv, bnp);
        o.y.dispose();
        const gr = kernels.get('batchNorm2d.backward', e, variant)(t.x, t.dy, t.g, o.mean, o.invStd);
        o.mean.dispose();
        o.invStd.dispose();
        return gr;
      }, SUM_TOL * 10);
      await expectSame('eval forward', inputs, (e, t) => kernels.get('batchNorm2d.evalForward', e, variant)(t.x, t.g, t.b, t.rm, t.rv, 1e-5), MAP_TOL);
      await expectSame('eval backward', inputs, (e, t) => kernels.get('batchNorm2d.evalBackward', e, variant)(t.x, t.dy, t.g, t.rm, t.rv, 1e-5), {
        dx: MAP_TOL, dgamma: SUM_TOL, dbeta: SUM_TOL,
      });
    });
  }

  it('bias gradient, sums and means over outer and inner axes, sumToShape', async () => {
    const r = rng(13);
    const inputs = { x: f(r, [6, 5, 7, 9]), rows: f(r, [1500, 3]) };
    await expectSame('bias grad [N,C,H,W]', inputs, (e, t) => kernels.get('bias.backward', e)(t.x), SUM_TOL);
    await expectSame('bias grad [N,C]', inputs, (e, t) => kernels.get('bias.backward', e)(t.rows), SUM_TOL);
    for (const axes of [null, [0], [1, 2, 3], [0, 2], [3]]) {
      await expectSame(`sum ${JSON.stringify(axes)}`, inputs, (e, t) => kernels.get('reduce.sum', e)(t.x, axes), SUM_TOL);
      await expectSame(`mean ${JSON.stringify(axes)} keepDims`, inputs, (e, t) => kernels.get('reduce.mean', e)(t.x, axes, true), SUM_TOL);
    }
    await expectSame('sumToShape [1,5,1,1]', inputs, (e, t) => kernels.get('reduce.sumToShape', e)(t.x, [1, 5, 1, 1]), SUM_TOL);
    await expectSame('sumToShape [7,9]', inputs, (e, t) => kernels.get('reduce.sumToShape', e)(t.x, [7, 9]), SUM_TOL);
  });

  it('losses (forward, backward with an upstream gradient) and softmax', async () => {
    const r = rng(17);
    const probs = Float32Array.from(randArray(r, 40 * 70), (v) => 0.5 + 0.45 * v);
    const targets = Float32Array.from(randArray(r, 40 * 70), (v) => (v > 0 ? 1 : 0.25));
    const inputs = {
      p: { data: probs, shape: [40, 70] },
      z: f(r, [40, 70], 4),
      t: { data: targets, shape: [40, 70] },
      logits: f(r, [300, 7], 3),
      labels: i32(Array.from({ length: 300 }, (_, i) => (i * 5) % 7), [300]),
      g: { data: Float32Array.from([0.75]), shape: [] },
      dy: f(r, [300, 7]),
    };
    await expectSame('bce forward', inputs, (e, t) => kernels.get('bce.forward', e)(t.p, t.t), SUM_TOL);
    await expectSame('bce backward', inputs, (e, t) => kernels.get('bce.backward', e)(t.p, t.t, t.g), MAP_TOL);
    await expectSame('bceWithLogits forward', inputs, (e, t) => kernels.get('bceWithLogits.forward', e)(t.z, t.t), SUM_TOL);
    await expectSame('bceWithLogits backward', inputs, (e, t) => kernels.get('bceWithLogits.backward', e)(t.z, t.t, t.g), MAP_TOL);
    await expectSame('crossEntropy forward', inputs, (e, t) => kernels.get('crossEntropy.forward', e)(t.logits, t.labels), SUM_TOL);
    await expectSame('crossEntropy backward', inputs, (e, t) => kernels.get('crossEntropy.backward', e)(t.logits, t.labels, t.g), MAP_TOL);
    await expectSame('softmax forward', inputs, (e, t) => kernels.get('softmax.forward', e)(t.logits), MAP_TOL);
    await expectSame('softmax backward', inputs, (e, t) => {
      const y = kernels.get('softmax.forward', e)(t.logits);
      const dx = kernels.get('softmax.backward', e)(y, t.dy);
      y.dispose();
      return dx;
    }, MAP_TOL);
  });
});
