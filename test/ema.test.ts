// WeightAverage (src/nn/ema.ts): the exponential moving average of a module's parameters and float
// buffers against a float64 reference of the recurrence t <- d t + (1 - d) s, over several steps in
// which the source changes; and its errors. Float32 on the GPU against float64: 1e-6 relative.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { WeightAverage } from '../src/nn/ema.js';
import { nn } from '../src/nn/index.js';
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
