// The adversarial step on tiny GANs: finite losses that change, and each half-step updating only its
// own network. Tiny shapes (8x8 dense, 16x16 DCGAN with widths 4) keep this fast on lavapipe.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { Discriminator, Generator, isConditional, latentBatch, oneHot, resolveGanConfig, type GanConfig } from '../src/gan/models.js';
import { GanStep, hingeDiscriminatorLoss } from '../src/gan/step.js';
import { manualSeed } from '../src/nn/seed.js';
import { noGrad } from '../src/nn/tensor.js';
import * as F from '../src/nn/functional.js';
import { Rng } from '../src/util/rng.js';
import { mixSeed } from '../src/data/split.js';
import { bceWithLogitsRef, crossEntropyRef } from '../src/kernels/reference/loss.js';
import { testEngine } from './helpers.js';

async function snapshot(ts: { toArray(): Promise<Float32Array | Int32Array> }[]): Promise<Float32Array[]> {
  return Promise.all(ts.map(async (t) => Float32Array.from(await t.toArray())));
}
const same = (a: Float32Array[], b: Float32Array[]): boolean => a.every((x, i) => x.every((v, j) => v === b[i][j]));

/** Real images: bright blobs on a dark field, different per class, in [0,1]. */
function realBatch(n: number, S: number, labels: Int32Array, rng: Rng): Float32Array {
  const x = new Float32Array(n * S * S);
  for (let i = 0; i < n; i++) {
    const cx = rng.uniform(0.3, 0.7) * S;
    const cy = labels[i] === 0 ? 0.3 * S : 0.7 * S;
    for (let y = 0; y < S; y++)
      for (let xx = 0; xx < S; xx++) x[i * S * S + y * S + xx] = Math.exp(-((xx - cx) ** 2 + (y - cy) ** 2) / (0.05 * S * S)) * 0.9 + 0.05;
  }
  return x;
}

const cases: [string, GanConfig][] = [
  ['dense 8x8, unconditional', { arch: 'dense', imageSize: 8, classes: ['a'], latentDim: 6, hidden: 16 }],
  ['dcgan 16x16, conditional', { arch: 'dcgan', imageSize: 16, classes: ['a', 'b'], latentDim: 6, ngf: 4, ndf: 4 }],
  ['dcgan 16x16, conditional BatchNorm in G', { arch: 'dcgan', imageSize: 16, classes: ['a', 'b'], latentDim: 6, ngf: 4, ndf: 4, conditionalBatchNorm: true }],
  ['dcgan 16x16, conditional, nearest upsampling in G', { arch: 'dcgan', imageSize: 16, classes: ['a', 'b'], latentDim: 6, ngf: 4, ndf: 4, upsampling: 'nearest' }],
  ['dcgan 16x16, conditional, auxiliary classifier', { arch: 'dcgan', imageSize: 16, classes: ['a', 'b'], latentDim: 6, ngf: 4, ndf: 4, auxiliaryClassifier: true }],
];

describe.each(cases)('GAN step: %s', (_name, config) => {
  let engine: Engine;
  let G: Generator;
  let D: Discriminator;
  let step: GanStep;
  const c = resolveGanConfig(config);
  const n = 6;
  const labels = Int32Array.from({ length: n }, (_, i) => i % c.classes.length);
  const rng = new Rng(5);

  beforeAll(async () => {
    engine = await testEngine();
    manualSeed(3);
    G = new Generator(c, engine);
    D = new Discriminator(c, engine);
    step = new GanStep(G, D, { lrG: 2e-3, lrD: 2e-3, labelSmoothing: 0.1, seed: 7 });
  });
  afterAll(() => engine.destroy());

  it('generator output has the image shape and the architecture\'s range', async () => {
    const z = engine.tensor(new Rng(1).normalArray(n * G.inputDim), [n, G.inputDim]);
    const x = G.forward(z);
    expect(x.shape).toEqual([n, 1, c.imageSize, c.imageSize]);
    const v = await x.toArray();
    const [lo, hi] = c.arch === 'dense' ? [0, 1] : [-1, 1];
    expect(v.every((p) => p >= lo && p <= hi)).toBe(true);
    expect(new Set(v).size).toBeGreaterThan(v.length / 2); // not constant
  });

  it('the discriminator step changes D and leaves G untouched; the generator step the reverse', async () => {
    const r = new Rng(9);
    const g0 = await snapshot(G.parameters());
    const d0 = await snapshot(D.parameters());
    step.discriminatorStep(realBatch(n, c.imageSize, labels, rng), labels, r);
    const g1 = await snapshot(G.parameters());
    const d1 = await snapshot(D.parameters());
    expect(same(g0, g1)).toBe(true);
    expect(same(d0, d1)).toBe(false);
    step.generatorStep(labels, r);
    const g2 = await snapshot(G.parameters());
    const d2 = await snapshot(D.parameters());
    expect(same(d1, d2)).toBe(true);
    expect(same(g1, g2)).toBe(false);
  });

  it('reports D(real) and D(fake) as the mean probabilities on the step\'s real and fake batches, before the update', async () => {
    const S = c.imageSize;
    const real = realBatch(n, S, labels, new Rng(21));
    // The fakes the step draws come first from its rng (no augmentation here): draw them again.
    const r = new Rng(31);
    const x = engine.tensor(step.toModelRange(real), [n, 1, S, S]);
    const fake = noGrad(() => G.forward(engine.tensor(latentBatch(c, labels, () => r.normal()), [n, G.inputDim])));
    const hot = isConditional(c) ? engine.tensor(oneHot(labels, c.classes.length), [n, c.classes.length]) : null;
    const logits = await noGrad(() =>
      D.batchesJoin ? D.logits(F.cat([x, fake]), hot ? F.cat([hot, hot]) : null) : F.cat([D.logits(x, hot), D.logits(fake, hot)]),
    ).toArray();
    const meanSigmoid = (from: number) => logits.slice(from, from + n).reduce((a, z) => a + 1 / (1 + Math.exp(-z)), 0) / n;
    const l = step.discriminatorStep(real, labels, new Rng(31));
    expect(Math.abs((await l.dReal.item()) - meanSigmoid(0))).toBeLessThan(1e-5);
    expect(Math.abs((await l.dFake.item()) - meanSigmoid(n))).toBeLessThan(1e-5);
    expect(l.dReal.shape).toEqual([]);
    expect(l.dFake.shape).toEqual([]);
    for (const t of Object.values(l)) t.dispose();
  });

  it('trains a few iterations with finite, changing losses', async () => {
    const lossesD: number[] = [];
    const lossesG: number[] = [];
    for (let i = 0; i < 6; i++) {
      const l = step.step(realBatch(n, c.imageSize, labels, rng), labels, i);
      lossesD.push(await l.lossD.item());
      lossesG.push(await l.lossG.item());
      const p = [await l.dReal.item(), await l.dFake.item()];
      expect(p.every((v) => v > 0 && v < 1)).toBe(true);
      for (const t of Object.values(l)) t.dispose();
    }
    expect([...lossesD, ...lossesG].every(Number.isFinite)).toBe(true);
    expect(new Set(lossesD).size).toBe(lossesD.length);
    expect(new Set(lossesG).size).toBe(lossesG.length);
    // At initialisation D(real) ~ D(fake) ~ 0.5, so loss_D starts near 2 ln 2 (smoothed targets add a little).
    expect(lossesD[0]).toBeGreaterThan(1.0);
    expect(lossesD[0]).toBeLessThan(2.0);
  });

  it('the same seed and iteration give the same step', async () => {
    manualSeed(3);
    const runs: number[][] = [];
    for (let k = 0; k < 2; k++) {
      manualSeed(11);
      const g = new Generator(c, engine);
      const d = new Discriminator(c, engine);
      const s = new GanStep(g, d, { seed: 4 });
      const real = realBatch(n, c.imageSize, labels, new Rng(2));
      const l = s.step(real, labels, 5);
      runs.push([await l.lossD.item(), await l.lossG.item()]);
      s.dispose();
      g.dispose();
      d.dispose();
    }
    expect(runs[0]).toEqual(runs[1]);
  });
});

// Discriminators without batch statistics score real and fake in one pass (Discriminator.batchesJoin);
// the step must equal the two-pass form: the same losses and the same updated D (up to the rounding of
// mean-of-2n-doubled against the sum of two means, which Adam's first step turns into at most an ulp-scale
// difference of lr-sized updates: tolerance 1e-6 absolute on parameters of size ~0.1).
describe('GAN step: one discriminator pass over real and fake', () => {
  const joinCases: [string, GanConfig, boolean][] = [
    ['dense 8x8', { arch: 'dense', imageSize: 8, classes: ['a'], latentDim: 6, hidden: 16 }, true],
    ['dcgan 16x16 conditional without D batch norm, DiffAugment', { arch: 'dcgan', imageSize: 16, classes: ['a', 'b'], latentDim: 6, ngf: 4, ndf: 4, discriminatorBatchNorm: false }, true],
    ['dcgan 16x16 with D batch norm', { arch: 'dcgan', imageSize: 16, classes: ['a'], latentDim: 6, ngf: 4, ndf: 4 }, false],
    ['dcgan 16x16 with spectral norm', { arch: 'dcgan', imageSize: 16, classes: ['a'], latentDim: 6, ngf: 4, ndf: 4, spectralNorm: true }, false],
    ['dense 8x8 conditional with an auxiliary classifier', { arch: 'dense', imageSize: 8, classes: ['a', 'b', 'c'], latentDim: 6, hidden: 16, auxiliaryClassifier: true }, true],
  ];
  it.each(joinCases)('%s: joins = %s, and the joined step equals the two-pass step', async (_name, config, joins) => {
    const engine = await testEngine();
    const c = resolveGanConfig(config);
    const n = 6;
    const labels = Int32Array.from({ length: n }, (_, i) => i % c.classes.length);
    const real = realBatch(n, c.imageSize, labels, new Rng(2));
    const augment = c.arch === 'dcgan' ? (x: Parameters<typeof F.diffAugment>[0], seed: number) => F.diffAugment(x, { seed }) : null;
    const results: { losses: number[]; d: Float32Array[] }[] = [];
    for (const join of [true, false]) {
      manualSeed(11);
      const g = new Generator(c, engine);
      const d = new Discriminator(c, engine);
      expect(d.batchesJoin).toBe(joins);
      if (!join) Object.defineProperty(d, 'batchesJoin', { get: () => false });
      const s = new GanStep(g, d, { seed: 4, labelSmoothing: 0.1, augment });
      const l = s.discriminatorStep(real, labels, new Rng(3));
      results.push({ losses: [await l.lossD.item(), await l.dReal.item(), await l.dFake.item()], d: await snapshot(d.parameters()) });
      s.dispose();
      g.dispose();
      d.dispose();
    }
    const [joined, separate] = results;
    joined.losses.forEach((v, i) => expect(v).toBeCloseTo(separate.losses[i], 6));
    joined.d.forEach((p, i) => p.forEach((v, j) => expect(Math.abs(v - separate.d[i][j])).toBeLessThanOrEqual(1e-6)));
    expect(joined.losses[0]).toBeGreaterThan(0.5); // a real loss, not zeros
    engine.destroy();
  });
});

// AC-GAN: each loss is its adversarial BCE plus w times the class cross-entropy of the auxiliary head, D's on
// the real images only, G's on its fakes, from the same logits the step computes. The expected values are
// the float64 loss references applied to logits drawn as the step draws them (no augmentation here).
// Tolerance 1e-5 absolute on losses of size ~1-3 (float32 logsumexp and means).
describe('GAN step with an auxiliary classifier', () => {
  const acCases: [string, GanConfig][] = [
    ['dense 8x8, one pass over real and fake', { arch: 'dense', imageSize: 8, classes: ['a', 'b', 'c'], latentDim: 6, hidden: 16, auxiliaryClassifier: true }],
    ['dcgan 16x16 with D batch norm, two passes', { arch: 'dcgan', imageSize: 16, classes: ['a', 'b', 'c'], latentDim: 6, ngf: 4, ndf: 4, auxiliaryClassifier: true }],
  ];
  const bce = (z: ArrayLike<number>, target: number): number => bceWithLogitsRef(z, new Float64Array(z.length).fill(target));

  it.each(acCases)('%s: loss_D and loss_G include w x cross-entropy (w = 0.5)', async (_name, config) => {
    const engine = await testEngine();
    const c = resolveGanConfig(config);
    const n = 6;
    const K = c.classes.length;
    const w = 0.5;
    const labels = Int32Array.from([0, 2, 1, 1, 0, 2]);
    const real = realBatch(n, c.imageSize, labels, new Rng(12));
    manualSeed(5);
    const G = new Generator(c, engine);
    const D = new Discriminator(c, engine);
    expect(D.classifier?.weight.shape).toEqual([K, c.arch === 'dense' ? c.hidden : 2 * c.ndf]);
    const s = new GanStep(G, D, { seed: 4, lrD: 1e-2, lrG: 1e-2, classWeight: w });
    const hot = engine.tensor(oneHot(labels, K), [n, K]);
    const scores = async (x: ReturnType<typeof engine.tensor>) => {
      const r = noGrad(() => D.scores(x, hot));
      return { logits: await r.logits.toArray(), cls: await r.classLogits!.toArray() };
    };
    // D step: the fakes come first from the step's rng; draw them again.
    const r = new Rng(31);
    const fake = noGrad(() => G.forward(engine.tensor(latentBatch(c, labels, () => r.normal()), [n, G.inputDim])));
    const sr = await scores(engine.tensor(s.toModelRange(real), [n, 1, c.imageSize, c.imageSize]));
    const sf = await scores(fake);
    const adversarialD = bce(sr.logits, 1) + bce(sf.logits, 0);
    const expectD = adversarialD + w * crossEntropyRef(sr.cls, labels, K);
    const rD = new Rng(31);
    const lD = s.discriminatorStep(real, labels, rD);
    expect(Math.abs((await lD.lossD.item()) - expectD)).toBeLessThan(1e-5);
    // G step against the updated D: r drew what the D step drew from rD, so it now holds the generator's noise.
    const fakeG = noGrad(() => G.forward(engine.tensor(latentBatch(c, labels, () => r.normal()), [n, G.inputDim])));
    const sg = await scores(fakeG);
    const expectG = bce(sg.logits, 1) + w * crossEntropyRef(sg.cls, labels, K);
    const lG = s.generatorStep(labels, rD);
    expect(Math.abs((await lG.item()) - expectG)).toBeLessThan(1e-5);
    expect(expectD - adversarialD).toBeGreaterThan(0.1); // the class term is there
    engine.destroy();
  });

  it('is refused without classes, and a class weight without the head', async () => {
    expect(() => resolveGanConfig({ arch: 'dcgan', imageSize: 16, classes: ['a'], auxiliaryClassifier: true })).toThrow(/auxiliary classifier needs a class-conditional/);
    const engine = await testEngine();
    const c = resolveGanConfig({ arch: 'dense', imageSize: 8, classes: ['a', 'b'], latentDim: 4, hidden: 8 });
    const G = new Generator(c, engine);
    const D = new Discriminator(c, engine);
    expect(D.classifier).toBeNull();
    expect(() => new GanStep(G, D, { classWeight: 1 })).toThrow(/needs a discriminator with an auxiliary classifier/);
    engine.destroy();
  });
});

// The hinge loss (loss: 'hinge'; SN-GAN, Miyato et al. 2018): D's loss mean relu(1 - l_real) + mean relu(1 + l_fake),
// G's -mean l_fake, from the same logits the step computes, against float64 references. Tolerance 1e-5 absolute
// on losses of size ~1-2 (float32 means of <= 12 terms); gradients 1e-6 absolute (each a single float32 quotient).
describe('GAN step with the hinge loss', () => {
  const hingeRef = (l: ArrayLike<number>, sign: number): number => Array.from(l).reduce((a, v) => a + Math.max(0, 1 + sign * v), 0) / l.length;

  it('hingeDiscriminatorLoss: value and gradient as the float64 reference, mixed and uniform signs', async () => {
    const engine = await testEngine();
    // Logits on both sides of each kink (1 - l and 1 + l change sign at +1 and -1), none at a kink.
    const logits = Float32Array.from([-2.5, -0.7, 0.3, 1.6, -1.4, 0.9, 2.2, -0.2]);
    for (const signs of [Float32Array.from([-1, -1, -1, -1, 1, 1, 1, 1]), new Float32Array(8).fill(-1), new Float32Array(8).fill(1)]) {
      const l = engine.tensor(logits, [8, 1], { requiresGrad: true });
      const loss = hingeDiscriminatorLoss(l, signs);
      const expected = Array.from(logits).reduce((a, v, i) => a + Math.max(0, 1 + signs[i] * v), 0) / 8;
      expect(expected).toBeGreaterThan(0.3); // not a test on zeros
      expect(Math.abs((await loss.item()) - expected)).toBeLessThan(1e-5);
      loss.backward();
      const grad = await l.grad!.toArray();
      const dRef = Array.from(logits, (v, i) => (1 + signs[i] * v > 0 ? signs[i] / 8 : 0));
      expect(dRef.some((v) => v === 0) && dRef.some((v) => v !== 0)).toBe(true); // both sides of the kink
      grad.forEach((g, i) => expect(Math.abs(g - dRef[i])).toBeLessThan(1e-6));
    }
    expect(() => hingeDiscriminatorLoss(engine.tensor(logits, [8, 1]), new Float32Array(3))).toThrow(/3 signs for 8 logits/);
    engine.destroy();
  });

  const hingeCases: [string, GanConfig][] = [
    ['dense 8x8, one pass over real and fake', { arch: 'dense', imageSize: 8, classes: ['a', 'b'], latentDim: 6, hidden: 16 }],
    ['dcgan 16x16 with D batch norm, two passes', { arch: 'dcgan', imageSize: 16, classes: ['a', 'b'], latentDim: 6, ngf: 4, ndf: 4 }],
  ];
  it.each(hingeCases)('%s: loss_D = mean relu(1 - D(real)) + mean relu(1 + D(fake)), loss_G = -mean D(fake)', async (_name, config) => {
    const engine = await testEngine();
    const c = resolveGanConfig(config);
    const n = 6;
    const labels = Int32Array.from([0, 1, 1, 0, 1, 0]);
    const real = realBatch(n, c.imageSize, labels, new Rng(14));
    manualSeed(6);
    const G = new Generator(c, engine);
    const D = new Discriminator(c, engine);
    expect(D.batchesJoin).toBe(c.arch === 'dense');
    const s = new GanStep(G, D, { seed: 4, lrD: 1e-2, lrG: 1e-2, loss: 'hinge' });
    const hot = engine.tensor(oneHot(labels, 2), [n, 2]);
    const logitsOf = async (x: ReturnType<typeof engine.tensor>) => Float64Array.from(await noGrad(() => D.logits(x, hot)).toArray());
    const r = new Rng(33);
    const fake = noGrad(() => G.forward(engine.tensor(latentBatch(c, labels, () => r.normal()), [n, G.inputDim])));
    const lr = await logitsOf(engine.tensor(s.toModelRange(real), [n, 1, c.imageSize, c.imageSize]));
    const lf = await logitsOf(fake);
    const expectD = hingeRef(lr, -1) + hingeRef(lf, 1);
    const rD = new Rng(33);
    const lD = s.discriminatorStep(real, labels, rD);
    expect(Math.abs((await lD.lossD.item()) - expectD)).toBeLessThan(1e-5);
    // G step against the updated D: r drew what the D step drew from rD, so it now holds the generator's noise.
    const fakeG = noGrad(() => G.forward(engine.tensor(latentBatch(c, labels, () => r.normal()), [n, G.inputDim])));
    const lg = await logitsOf(fakeG);
    const expectG = -lg.reduce((a, v) => a + v, 0) / n;
    const before = await snapshot(G.parameters().map((p) => p.value));
    const lG = s.generatorStep(labels, rD);
    expect(Math.abs((await lG.item()) - expectG)).toBeLessThan(1e-5);
    expect(Math.abs(expectG)).toBeGreaterThan(1e-3); // not a test on zeros
    expect(same(before, await snapshot(G.parameters().map((p) => p.value)))).toBe(false); // G moved
    engine.destroy();
  });

  it('refuses label smoothing with the hinge loss, and an unknown loss', async () => {
    const engine = await testEngine();
    const c = resolveGanConfig({ arch: 'dense', imageSize: 8, classes: ['a'], latentDim: 4, hidden: 8 });
    const G = new Generator(c, engine);
    const D = new Discriminator(c, engine);
    expect(() => new GanStep(G, D, { loss: 'hinge', labelSmoothing: 0.1 })).toThrow(/label smoothing applies to the BCE loss only/);
    expect(() => new GanStep(G, D, { loss: 'wasserstein' as never })).toThrow(/GAN loss must be one of bce, hinge, got 'wasserstein'/);
    engine.destroy();
  });
});

describe('GAN step with several discriminator steps', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await testEngine();
  });
  afterAll(() => engine.destroy());

  it('discriminatorSteps k runs k D steps (fresh draws from the iteration\'s generator) and then one G step', async () => {
    const c = resolveGanConfig({ arch: 'dcgan', imageSize: 16, classes: ['a', 'b'], latentDim: 6, ngf: 4, ndf: 4, spectralNorm: true });
    const n = 4;
    const labels = Int32Array.from({ length: n }, (_, i) => i % 2);
    const real = realBatch(n, 16, labels, new Rng(2));
    const build = (steps?: number) => {
      manualSeed(11);
      const g = new Generator(c, engine);
      const d = new Discriminator(c, engine);
      return { g, d, s: new GanStep(g, d, { seed: 4, lrD: 1e-3, lrG: 1e-3, discriminatorSteps: steps }) };
    };
    const twice = build(2);
    const byHand = build();
    const once = build(1);
    try {
      const l = twice.s.step(real, labels, 3);
      // The same by hand: two D steps and a G step drawing in turn from the iteration's generator.
      const r = new Rng(mixSeed(4, 3));
      const first = byHand.s.discriminatorStep(real, labels, r);
      const second = byHand.s.discriminatorStep(real, labels, r);
      const lossG = byHand.s.generatorStep(labels, r);
      expect(await l.lossD.item()).toBe(await second.lossD.item());
      expect(await l.lossG.item()).toBe(await lossG.item());
      expect(await first.lossD.item()).not.toBe(await second.lossD.item());
      expect(same(await snapshot(twice.d.parameters()), await snapshot(byHand.d.parameters()))).toBe(true);
      expect(same(await snapshot(twice.g.parameters()), await snapshot(byHand.g.parameters()))).toBe(true);
      // One D step: a different discriminator after the iteration.
      once.s.step(real, labels, 3);
      expect(same(await snapshot(once.d.parameters()), await snapshot(twice.d.parameters()))).toBe(false);
      for (const t of [...Object.values(l), ...Object.values(first), ...Object.values(second), lossG]) t.dispose();
    } finally {
      for (const x of [twice, byHand, once]) (x.s.dispose(), x.g.dispose(), x.d.dispose());
    }
    const g = new Generator(c, engine);
    const d = new Discriminator(c, engine);
    expect(() => new GanStep(g, d, { discriminatorSteps: 0 })).toThrow(/discriminator steps per generator step must be a positive integer, got 0/);
    g.dispose();
    d.dispose();
  });
});
