// Optimizer state dicts: a run saved after k steps and restored into a fresh model and a fresh
// optimizer continues bit-identically to an uninterrupted run (Adam, and SGD with momentum).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { ShapeError } from '../src/gpu/errors.js';
import * as F from '../src/nn/functional.js';
import { Linear, type StateDict } from '../src/nn/modules.js';
import { Adam, SGD, type Optimizer, type OptimizerState } from '../src/nn/optim.js';
import { manualSeed } from '../src/nn/seed.js';
import { randArray, rng, testEngine } from './helpers.js';

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const IN = 5;
const OUT = 3;
const N = 7;

/** One step on batch `t` (data drawn from Rng(t), so both runs see the same batches). */
function step(model: Linear, opt: Optimizer, t: number): void {
  engine.tidy(() => {
    const r = rng(100 + t);
    const x = engine.tensor(randArray(r, N * IN), [N, IN]);
    const labels = engine.tensor(Int32Array.from({ length: N }, () => r.int(OUT)), [N]);
    opt.zeroGrad();
    F.crossEntropy(model.forward(x), labels).backward();
    opt.step();
  });
}

const weights = async (m: Linear) => Object.fromEntries(Object.entries(await m.stateDict()).map(([k, v]) => [k, Array.from(v.data as Float32Array)]));
const buffers = (s: OptimizerState) => Object.fromEntries(Object.entries(s.buffers).map(([k, v]) => [k, Array.from(v.data as Float32Array)]));
/** As a checkpoint stores it: hyperparameters through JSON, buffers as host copies. */
const throughJson = (s: OptimizerState): OptimizerState => ({ ...JSON.parse(JSON.stringify({ ...s, buffers: {} })), buffers: s.buffers });

const makers: [string, (m: Linear, lr: number) => Optimizer][] = [
  ['Adam', (m, lr) => new Adam(m.parameters(), { lr, betas: [0.8, 0.99], weightDecay: 0.01 })],
  ['SGD momentum nesterov', (m, lr) => new SGD(m.parameters(), { lr, momentum: 0.9, nesterov: true, weightDecay: 0.01 })],
];

describe.each(makers)('%s stateDict / loadStateDict', (_name, make) => {
  it('save after 3 steps, restore into a fresh model and optimizer, 3 more steps == 6 uninterrupted steps (bit for bit)', async () => {
    manualSeed(7);
    const a = new Linear(IN, OUT, { engine });
    const optA = make(a, 0.05);
    for (let t = 0; t < 6; t++) step(a, optA, t);

    manualSeed(7);
    const b = new Linear(IN, OUT, { engine });
    const optB = make(b, 0.05);
    for (let t = 0; t < 3; t++) step(b, optB, t);
    const savedModel: StateDict = await b.stateDict();
    const savedOpt = throughJson(await optB.stateDict());
    expect(Object.keys(savedOpt.buffers).length).toBeGreaterThan(0);

    manualSeed(99); // another initialisation and another learning rate: all overwritten by the restore
    const c = new Linear(IN, OUT, { engine });
    const optC = make(c, 0.5);
    c.loadStateDict(savedModel);
    optC.loadStateDict(savedOpt);
    expect(optC.lr).toBe(0.05);
    for (let t = 3; t < 6; t++) step(c, optC, t);

    expect(await weights(c)).toEqual(await weights(a));
    const [sa, sc] = [await optA.stateDict(), await optC.stateDict()];
    expect(sc.hyper).toEqual(sa.hyper);
    expect(buffers(sc)).toEqual(buffers(sa));
    for (const o of [optA, optB, optC]) o.dispose();
  });
});

describe('loadStateDict errors', () => {
  it('another optimizer class, another parameter count or shape is a clear error', async () => {
    manualSeed(3);
    const m = new Linear(IN, OUT, { engine });
    const adam = new Adam(m.parameters());
    step(m, adam, 0);
    const state = await adam.stateDict();
    expect(state.hyper.step).toBe(1);
    expect(Object.keys(state.buffers).sort()).toEqual(['0.exp_avg', '0.exp_avg_sq', '1.exp_avg', '1.exp_avg_sq']);
    expect(() => new SGD(m.parameters(), { lr: 0.1, momentum: 0.9 }).loadStateDict(state)).toThrow(/written by Adam/);
    expect(() => new Adam([m.weight]).loadStateDict(state)).toThrow(/for 2 parameters, this optimizer has 1/);
    const other = new Linear(IN + 1, OUT, { engine });
    expect(() => new Adam(other.parameters()).loadStateDict(state)).toThrow(ShapeError);
    expect(() => new Adam(m.parameters()).loadStateDict({ ...state, buffers: { ...state.buffers, '5.exp_avg': state.buffers['1.exp_avg'] } })).toThrow(
      /unexpected buffer '5.exp_avg'/,
    );
    adam.dispose();
  });
});
