// WeightAverage (src/nn/ema.ts): the exponential moving average of a module's parameters and float
// buffers against a float64 reference of the recurrence t <- d t + (1 - d) s, over several steps in
// which the source changes; and its errors. Float32 on the GPU against float64: 1e-6 relative.
// Standing statistics (standingStatistics, src/nn/modules.ts; recomputeGeneratorStatistics, src/gan/samples.ts),
// the remedy for an averaged generator's BatchNorm: the running statistics become the plain average of
// the per-batch mean and unbiased variance (float64 reference, 1e-5 relative), the weights stay.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { Generator, resolveGanConfig } from '../src/gan/models.js';
import { recomputeGeneratorStatistics } from '../src/gan/samples.js';
import { WeightAverage } from '../src/nn/ema.js';
import { nn } from '../src/nn/index.js';
import { standingStatistics } from '../src/nn/modules.js';
import { expectClose, randArray, rng, testEngine } from './helpers.js';

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const model = () => new nn.Sequential(new nn.Conv2d(2, 3, 3, { engine }), new nn.BatchNorm2d(3, { engine }), new nn.Linear(4, 5, { engine }));
const floats = (m: nn.Module) => [...m.namedParameters(), ...m.namedBuffers()].filter(([, t]) => t.dtype === 'f32');

describe('WeightAverage', () => {
  it('averages every parameter and float buffer (BatchNorm running statistics too) as the float64 recurrence', async () => {
    const source = model();
    const target = model();
    const decay = 0.9;
    const avg = new WeightAverage(source, target, decay);
    avg.copy();
    const names = floats(source).map(([n]) => n);
    expect(names).toEqual(expect.arrayContaining(['1.running_mean', '1.running_var', '0.weight', '2.bias']));
    const expected = new Map<string, Float64Array>();
    for (const [n, t] of floats(source)) expected.set(n, Float64Array.from((await t.toArray()) as Float32Array));
    const r = rng(7);
    for (let step = 0; step < 4; step++) {
      // The source moves (as an optimizer step would), then the average follows.
      for (const [n, t] of floats(source)) {
        const next = randArray(r, t.size, 2);
        t.setValue(engine.fromArray(next, t.shape));
        const e = expected.get(n)!;
        for (let i = 0; i < e.length; i++) e[i] = decay * e[i] + (1 - decay) * next[i];
      }
      avg.update();
    }
    const got = new Map(floats(target));
    for (const [n, e] of expected) expectClose((await got.get(n)!.toArray()) as Float32Array, e, 1e-6, n);
    source.dispose();
    target.dispose();
  });

  it('refuses another architecture and a decay outside [0, 1)', () => {
    const a = model();
    const b = new nn.Sequential(new nn.Conv2d(2, 4, 3, { engine }));
    expect(() => new WeightAverage(a, b, 0.99)).toThrow(/target has no 0.weight of shape \[3, 2, 3, 3\]/);
    expect(() => new WeightAverage(a, model(), 1)).toThrow(/decay must be in \[0, 1\)/);
    a.dispose();
    b.dispose();
  });
});

describe('standing statistics', () => {
  it("recompute BatchNorm's running statistics as the average over the passes, leave the weights, and restore momentum and mode", async () => {
    const bn = new nn.BatchNorm2d(3, { engine, momentum: 0.3 });
    const m = new nn.Sequential(bn);
    m.eval();
    // Running statistics from earlier training that the recomputation must forget.
    bn.runningMean.setValue(engine.fromArray(Float32Array.of(5, -5, 2), [3]));
    bn.runningVar.setValue(engine.fromArray(Float32Array.of(9, 0.1, 4), [3]));
    const weight = Float32Array.of(1.5, -0.5, 2);
    bn.weight.setValue(engine.fromArray(weight, [3]));
    const r = rng(11);
    const batches = [0, 1, 2].map((i) => randArray(r, 2 * 3 * 4 * 5, 1 + i)); // [2, 3, 4, 5], a different spread each
    standingStatistics(m, batches.length, (i) => engine.tidy(() => m.forward(engine.tensor(batches[i], [2, 3, 4, 5]))).dispose());
    const mean = new Float64Array(3);
    const variance = new Float64Array(3);
    for (const b of batches)
      for (let c = 0; c < 3; c++) {
        const v: number[] = [];
        for (let n = 0; n < 2; n++) for (let k = 0; k < 20; k++) v.push(b[(n * 3 + c) * 20 + k]);
        const mu = v.reduce((a, x) => a + x, 0) / v.length;
        mean[c] += mu / batches.length;
        variance[c] += v.reduce((a, x) => a + (x - mu) ** 2, 0) / (v.length - 1) / batches.length; // unbiased, as torch keeps it
      }
    expectClose((await bn.runningMean.toArray()) as Float32Array, mean, 1e-5, 'running_mean');
    expectClose((await bn.runningVar.toArray()) as Float32Array, variance, 1e-5, 'running_var');
    expect(bn.numBatchesTracked).toBe(3);
    expect(Array.from((await bn.weight.toArray()) as Float32Array)).toEqual(Array.from(weight));
    expect(bn.momentum).toBe(0.3);
    expect(m.training).toBe(false);
    expect(() => standingStatistics(m, 0, () => {})).toThrow(/passes must be a positive integer/);
    m.dispose();
  });

  it("recomputeGeneratorStatistics changes a DCGAN generator's running statistics only, the same way for a seed", async () => {
    const config = resolveGanConfig({ arch: 'dcgan', imageSize: 16, classes: ['a', 'b', 'c'], ngf: 4, ndf: 4 });
    const state = async (g: Generator) => Object.fromEntries(await Promise.all(g.namedBuffers().concat(g.namedParameters()).map(async ([n, t]) => [n, Array.from((await t.toArray()) as Float32Array)] as const)));
    const [a, b] = [new Generator(config, engine), new Generator(config, engine)];
    b.loadStateDict(await a.stateDict());
    const before = await state(a);
    recomputeGeneratorStatistics(a, 3, 7, 8);
    recomputeGeneratorStatistics(b, 3, 7, 8);
    const [afterA, afterB] = [await state(a), await state(b)];
    expect(afterA).toEqual(afterB);
    for (const [n, v] of Object.entries(before)) {
      if (n.endsWith('running_mean') || n.endsWith('running_var')) expect(afterA[n]).not.toEqual(v);
      else expect(afterA[n]).toEqual(v);
    }
    a.dispose();
    b.dispose();
  });
});
