// Every case of torch_ref_seed1.json through the public API: forward values, and gradients through
// backward(). Tolerance: the file's recommended max(1e-5, 20 * fp32_torch_err); Adam deltas 1e-3.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, F, noGrad, optim, Tensor } from '../src/index.js';
import { expectRef, refCases, refData, refTol, type RefCase, type RefTensor } from './torch-ref.js';

let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create({ poisonAllocations: true });
});
afterAll(() => engine.destroy());

const t = (r: RefTensor, requiresGrad = false): Tensor =>
  r.dtype === 'i32'
    ? engine.tensor(Int32Array.from(r.data!), r.shape)
    : engine.tensor(Float32Array.from(refData(r)), r.shape, { requiresGrad });

async function check(c: RefCase, got: Tensor | null | undefined, name: string, ref: RefTensor, tolName = name): Promise<void> {
  expect(got, `${c.id}: ${name} missing`).toBeTruthy();
  expectRef(await got!.toArray(), ref, refTol(c, tolName), `${c.id} ${name}`);
}

/** Runs `forward` on the case's inputs, back-propagates the case's upstream (or 1 for losses), checks all. */
async function runCase(c: RefCase, forward: (inp: Record<string, Tensor>) => Tensor, outName = 'y'): Promise<void> {
  const inputs: Record<string, Tensor> = {};
  for (const [name, r] of Object.entries(c.inputs)) inputs[name] = t(r, `d${name}` in c.grads);
  const y = forward(inputs);
  await check(c, y, outName, c.outputs[outName]);
  if (c.upstream) y.backward(t(c.upstream.dy));
  else y.backward();
  for (const [gname, ref] of Object.entries(c.grads)) await check(c, inputs[gname.slice(1)].grad, gname, ref);
}

const pair = (p: number[]): [number, number] => [p[0], p[1]];

describe('torch reference through the public API', () => {
  it.each(refCases('conv2d').map((c) => [c.id, c]))('%s', async (_id, c) => {
    await runCase(c, (i) => F.conv2d(i.x, i.w, i.b, { stride: pair(c.params.stride), padding: pair(c.params.padding) }));
  });
  it.each(refCases('conv_transpose2d').map((c) => [c.id, c]))('%s', async (_id, c) => {
    await runCase(c, (i) => F.convTranspose2d(i.x, i.w, i.b, { stride: pair(c.params.stride), padding: pair(c.params.padding) }));
  });
  it.each(refCases('max_pool2d').map((c) => [c.id, c]))('%s', async (_id, c) => {
    await runCase(c, (i) => F.maxPool2d(i.x, { kernelSize: pair(c.params.kernel), stride: pair(c.params.stride) }));
  });
  it.each(refCases('linear').map((c) => [c.id, c]))('%s', async (_id, c) => {
    await runCase(c, (i) => F.linear(i.x, i.w, i.b));
  });
  for (const op of ['relu', 'leaky_relu', 'sigmoid', 'tanh', 'softmax'] as const) {
    it.each(refCases(op).map((c) => [c.id, c]))('%s', async (_id, c) => {
      await runCase(c, (i) =>
        op === 'relu' ? F.relu(i.x) : op === 'leaky_relu' ? F.leakyRelu(i.x, c.params.negative_slope) : op === 'sigmoid' ? F.sigmoid(i.x) : op === 'tanh' ? F.tanh(i.x) : F.softmax(i.x, c.params.dim),
      );
    });
  }
  it.each(refCases('bce').map((c) => [c.id, c]))('%s', async (_id, c) => {
    await runCase(c, (i) => F.binaryCrossEntropy(i.p, i.target), 'loss');
  });
  it.each(refCases('bce_with_logits').map((c) => [c.id, c]))('%s', async (_id, c) => {
    await runCase(c, (i) => F.binaryCrossEntropyWithLogits(i.logits, i.target), 'loss');
  });
  it.each(refCases('softmax_cross_entropy').map((c) => [c.id, c]))('%s', async (_id, c) => {
    await runCase(c, (i) => F.crossEntropy(i.logits, i.labels), 'loss');
  });

  it.each(refCases('batch_norm2d').map((c) => [c.id, c]))('%s', async (_id, c) => {
    const C = c.inputs.gamma.shape[0];
    const rm = engine.zerosTensor([C]);
    const rv = engine.onesTensor([C]);
    await runCase(c, (i) => F.batchNorm2d(i.x, rm, rv, i.gamma, i.beta, { training: true, momentum: c.params.momentum, eps: c.params.eps }));
    await check(c, rm, 'running_mean', c.outputs.running_mean);
    await check(c, rv, 'running_var', c.outputs.running_var);
    // Batch statistics: with momentum 1 the running values are the batch mean and the unbiased var.
    const [n, , h, w] = c.inputs.x.shape;
    const m = n * h * w;
    const bm = engine.zerosTensor([C]);
    const bv = engine.onesTensor([C]);
    noGrad(() => F.batchNorm2d(t(c.inputs.x), bm, bv, t(c.inputs.gamma), t(c.inputs.beta), { training: true, momentum: 1, eps: c.params.eps }));
    await check(c, bm, 'batch_mean', c.outputs.batch_mean);
    const biased = Array.from(await bv.toArray()).map((v) => (v * (m - 1)) / m);
    expectRef(biased, c.outputs.batch_var, refTol(c, 'batch_var'), `${c.id} batch_var`);
  });

  it.each(refCases('adam').map((c) => [c.id, c]))('%s', async (_id, c) => {
    const w = t(c.inputs.w, true);
    const b = t(c.inputs.b, true);
    const opt = new optim.Adam([w, b], { lr: c.params.lr, betas: [c.params.beta1, c.params.beta2], eps: c.params.eps, weightDecay: c.params.weight_decay });
    let before = { w: refData(c.inputs.w), b: refData(c.inputs.b) };
    for (const step of c.steps!) {
      w.grad = new Tensor(engine.fromArray(Float32Array.from(step.grads.w.data), step.grads.w.shape), { track: false });
      b.grad = new Tensor(engine.fromArray(Float32Array.from(step.grads.b.data), step.grads.b.shape), { track: false });
      opt.step();
      for (const [name, p] of [['w', w], ['b', b]] as const) {
        const got = await p.toArray();
        const exp = step.params_after[name].data as number[];
        const delta = Array.from(got, (v, i) => v - before[name][i]);
        const expDelta = exp.map((v, i) => v - before[name][i]);
        expectRef(delta, { shape: [exp.length], dtype: 'f64', data: expDelta }, 1e-3, `${c.id} step ${step.t} delta ${name}`);
        const mom = opt.moments(p)!;
        expectRef(await mom.m.toArray(), step.exp_avg[name], 1e-5, `${c.id} step ${step.t} exp_avg ${name}`);
        expectRef(await mom.v.toArray(), step.exp_avg_sq[name], 1e-5, `${c.id} step ${step.t} exp_avg_sq ${name}`);
      }
      // The next step starts from PyTorch's params_after (as the reference does).
      before = { w: Float64Array.from(step.params_after.w.data), b: Float64Array.from(step.params_after.b.data) };
      w.setValue(engine.fromArray(Float32Array.from(before.w), w.shape));
      b.setValue(engine.fromArray(Float32Array.from(before.b), b.shape));
    }
    opt.dispose();
  });

  it.each(refCases('tiny_cnn_bce').map((c) => [c.id, c]))('%s', async (_id, c) => {
    const i: Record<string, Tensor> = {};
    for (const [name, r] of Object.entries(c.inputs)) i[name] = t(r, name !== 'target');
    const conv = c.params.conv;
    const z = F.conv2d(i.x, i.conv_w, i.conv_b, { stride: pair(conv.stride), padding: pair(conv.padding) });
    const pooled = F.maxPool2d(F.relu(z), { kernelSize: pair(c.params.pool.kernel), stride: pair(c.params.pool.stride) });
    const logit = F.linear(F.flatten(pooled), i.dense_w, i.dense_b);
    const prob = F.sigmoid(logit);
    const loss = F.binaryCrossEntropy(prob, i.target);
    await check(c, z, 'z_conv', c.outputs.z_conv);
    await check(c, pooled, 'pool', c.outputs.pool);
    await check(c, logit, 'logit', c.outputs.logit);
    await check(c, prob, 'prob', c.outputs.prob);
    await check(c, loss, 'loss', c.outputs.loss);
    loss.backward();
    for (const [gname, ref] of Object.entries(c.grads)) await check(c, i[gname.slice(1)].grad, gname, ref);
  });
});
