// Spectral normalisation (nn.spectralNorm, torch.nn.utils.spectral_norm semantics) against float64
// CPU computations: sigma after many power-iteration steps against the top singular value from a
// Jacobi eigen-decomposition of W Wᵀ; one training forward (power step, buffers, W / sigma) against a
// float64 replay from the same u; weight gradients against central differences of the float64
// function with u and v held at the values the forward used; a tiny spectrally normalised DCGAN step;
// state-dict names and a save/load round trip; eval leaving u and v alone. When PyTorch is installed
// (/usr/bin/python3 -c "import torch"), the saved file is also loaded into torch's spectral_norm
// module with strict=True and its training forward compared; without torch that check is skipped.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { Discriminator, Generator, resolveGanConfig } from '../src/gan/models.js';
import { GanStep } from '../src/gan/step.js';
import { loadGanDir, readGanMetadata } from '../src/gan/model-dir.js';
import { trainGan, type GanTrainOptions } from '../src/gan/train.js';
import { generateSynthetic } from '../src/data/synthetic.js';
import { F, load, manualSeed, nn, readSafetensors, save, type Tensor } from '../src/nn/index.js';
import { Rng } from '../src/util/rng.js';
import { symmetricEigen } from '../src/gan/linalg.js';
import { spectralNormRef } from '../src/kernels/reference/spectral-norm.js';
import { dot, expectClose, numericalGrad, randArray, testEngine, tinyGanOptions } from './helpers.js';
import { runTorchJson, torchAvailable } from './torch-python.js';

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const f32 = async (t: Tensor): Promise<Float32Array> => Float32Array.from(await t.toArray());

// ------------------------------------------------------------------ float64 references

/** Singular values of the rows x cols matrix W (row-major), largest first: square roots of eig(W Wᵀ). */
function singularValues(w: ArrayLike<number>, rows: number, cols: number): number[] {
  const g = new Float64Array(rows * rows);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < rows; j++) {
      let s = 0;
      for (let k = 0; k < cols; k++) s += w[i * cols + k] * w[j * cols + k];
      g[i * rows + j] = s;
    }
  // symmetricEigen (src/gan/linalg.ts, tested against known spectra in test/gan-quality.test.ts) returns them ascending.
  return Array.from(symmetricEigen(g, rows).values, (l) => Math.sqrt(Math.max(l, 0))).reverse();
}

/** One step of torch's power iteration, v = normalize(Wᵀu), u = normalize(W v): the float64 reference of the kernels. */
function powerStep(w: ArrayLike<number>, rows: number, cols: number, u: ArrayLike<number>): { u: Float64Array; v: Float64Array } {
  return spectralNormRef(w, rows, cols, u, new Float64Array(cols), 1, 1e-12);
}

/** W / (uᵀ W v) (the reference with no power step). */
function normalizedWeight(w: ArrayLike<number>, rows: number, cols: number, u: ArrayLike<number>, v: ArrayLike<number>): Float64Array {
  return spectralNormRef(w, rows, cols, u, v, 0, 1e-12).normalized;
}

/** The layer's forward in float64 with weight w: x Wᵀ + b (Linear) or a direct convolution (Conv2d). */
type Reference = (x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>) => Float64Array;

function linearRef(n: number, inF: number, outF: number): Reference {
  return (x, w, b) => {
    const y = new Float64Array(n * outF);
    for (let r = 0; r < n; r++)
      for (let o = 0; o < outF; o++) {
        let s = b[o];
        for (let k = 0; k < inF; k++) s += x[r * inF + k] * w[o * inF + k];
        y[r * outF + o] = s;
      }
    return y;
  };
}

function conv2dRef(xShape: [number, number, number, number], outC: number, k: number, stride: number, pad: number): Reference {
  const [N, C, H, W] = xShape;
  const Ho = Math.floor((H + 2 * pad - k) / stride) + 1;
  const Wo = Math.floor((W + 2 * pad - k) / stride) + 1;
  return (x, w, b) => {
    const y = new Float64Array(N * outC * Ho * Wo);
    for (let n = 0; n < N; n++)
      for (let o = 0; o < outC; o++)
        for (let i = 0; i < Ho; i++)
          for (let j = 0; j < Wo; j++) {
            let s = b[o];
            for (let c = 0; c < C; c++)
              for (let ki = 0; ki < k; ki++)
                for (let kj = 0; kj < k; kj++) {
                  const yi = i * stride + ki - pad;
                  const xj = j * stride + kj - pad;
                  if (yi < 0 || yi >= H || xj < 0 || xj >= W) continue;
                  s += x[((n * C + c) * H + yi) * W + xj] * w[((o * C + c) * k + ki) * k + kj];
                }
            y[((n * outC + o) * Ho + i) * Wo + j] = s;
          }
    return y;
  };
}

// ------------------------------------------------------------------ the layers under test

interface Case {
  name: string;
  /** A fresh layer (global seed set by the caller), spectral norm not yet applied. */
  make: () => nn.Conv2d | nn.Linear;
  xShape: number[];
  rows: number;
  cols: number;
  reference: Reference;
}

const cases: Case[] = [
  { name: 'Linear 13 -> 7', make: () => new nn.Linear(13, 7, { engine }), xShape: [4, 13], rows: 7, cols: 13, reference: linearRef(4, 13, 7) },
  {
    name: 'Conv2d 3 -> 5, 3x3, padding 1',
    make: () => new nn.Conv2d(3, 5, 3, { engine, padding: 1 }),
    xShape: [2, 3, 6, 5],
    rows: 5,
    cols: 27,
    reference: conv2dRef([2, 3, 6, 5], 5, 3, 1, 1),
  },
];

describe.each(cases)('spectralNorm: $name', (c) => {
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

  it('after many power-iteration steps, sigma is the top singular value of the [out, in*kh*kw] weight', async () => {
    manualSeed(11);
    const m = nn.spectralNorm(c.make(), { nPowerIterations: 200 });
    const sn = nn.spectralNormOf(m)!;
    m.forward(engine.tensor(randArray(new Rng(1), size(c.xShape)), c.xShape)); // training: 200 steps
    const w = await f32(m.weight);
    const s = singularValues(w, c.rows, c.cols);
    // A clear gap, so 200 steps converge far below float32 precision: error ~ (s2/s1)^400.
    expect(s[1] / s[0]).toBeLessThan(0.95);
    const sigma = await sn.sigma().item();
    // Float32 sums of rows*cols products: a few 1e-7 relative.
    expect(Math.abs(sigma - s[0]) / s[0]).toBeLessThan(1e-5);
    // The Frobenius norm bounds it from above (a check of the reference itself).
    expect(s[0]).toBeLessThanOrEqual(Math.sqrt(dot(w, w)));
  });

  it('a training forward runs one power step from the stored u and computes with W / sigma (float64 replay)', async () => {
    manualSeed(12);
    const m = nn.spectralNorm(c.make());
    expect(m.training).toBe(true);
    const w = await f32(m.weight);
    const b = await f32(m.bias!);
    const u0 = await f32(nn.spectralNormOf(m)!.u);
    expect(Math.abs(Math.sqrt(dot(u0, u0)) - 1)).toBeLessThan(1e-6); // initialised normalised
    const x = randArray(new Rng(2), size(c.xShape));
    const y = await f32(m.forward(engine.tensor(x, c.xShape)));
    const step = powerStep(w, c.rows, c.cols, u0);
    // Float32 against float64: a few ulp through the norms, sigma and the layer's sums.
    expectClose(await f32(nn.spectralNormOf(m)!.u), step.u, 1e-5, 'u after the step');
    expectClose(await f32(nn.spectralNormOf(m)!.v), step.v, 1e-5, 'v after the step');
    expectClose(y, c.reference(x, normalizedWeight(w, c.rows, c.cols, step.u, step.v), b), 1e-5, 'forward');
  });

  it('weight gradient equals central differences with u, v held at the values the forward used', async () => {
    manualSeed(13);
    const m = nn.spectralNorm(c.make());
    const sn = nn.spectralNormOf(m)!;
    const r = new Rng(3);
    const x = randArray(r, size(c.xShape));
    const xt = engine.tensor(x, c.xShape);
    const y1 = m.forward(xt); // training: updates u, v; the graph holds this step's u, v
    const u1 = await f32(sn.u);
    const v1 = await f32(sn.v);
    const dy1 = randArray(r, y1.size);
    // A second training forward before the backward (as the GAN's D step does with real and fake
    // batches): its own u, v; the first forward's gradient must still use u1, v1.
    const y2 = m.forward(xt);
    const u2 = await f32(sn.u);
    const v2 = await f32(sn.v);
    expect(u2.some((a, i) => a !== u1[i])).toBe(true);
    const dy2 = randArray(r, y2.size);
    const loss = F.add(F.sum(F.mul(y1, engine.tensor(dy1, y1.shape))), F.sum(F.mul(y2, engine.tensor(dy2, y2.shape))));
    loss.backward();
    const grad = await f32(m.weight.grad!);

    const w = await f32(m.weight);
    const b = await f32(m.bias!);
    const f = (wd: Float64Array): number =>
      dot(dy1, c.reference(x, normalizedWeight(wd, c.rows, c.cols, u1, v1), b)) +
      dot(dy2, c.reference(x, normalizedWeight(wd, c.rows, c.cols, u2, v2), b));
    // Float64 central differences with h = 1e-6: truncation and rounding ~1e-9 relative; the
    // float32 analytic gradient is good to ~1e-6, so 1e-4 leaves a wide margin yet catches a
    // missing sigma term (which changes the gradient by O(1)).
    expectClose(grad, numericalGrad(f, w, 1e-6), 1e-4, 'd loss / d weight_orig');
  });

  it('eval mode uses the stored u, v without changing them; the gradient still flows through sigma', async () => {
    manualSeed(14);
    const m = nn.spectralNorm(c.make());
    const sn = nn.spectralNormOf(m)!;
    m.eval();
    const u0 = await f32(sn.u);
    const v0 = await f32(sn.v);
    const r = new Rng(4);
    const x = randArray(r, size(c.xShape));
    const y = m.forward(engine.tensor(x, c.xShape));
    y.backward(engine.tensor(randArray(new Rng(5), y.size), y.shape));
    expect(await f32(sn.u)).toEqual(u0);
    expect(await f32(sn.v)).toEqual(v0);
    const w = await f32(m.weight);
    const b = await f32(m.bias!);
    expectClose(await f32(y), c.reference(x, normalizedWeight(w, c.rows, c.cols, u0, v0), b), 1e-5, 'eval forward');
    const dy = randArray(new Rng(5), y.size);
    const f = (wd: Float64Array): number => dot(dy, c.reference(x, normalizedWeight(wd, c.rows, c.cols, u0, v0), b));
    expectClose(await f32(m.weight.grad!), numericalGrad(f, w, 1e-6), 1e-4, 'eval d loss / d weight_orig');
  });
});

describe('spectralNorm: state dict and serialisation', () => {
  const make = () =>
    new nn.Sequential(
      nn.spectralNorm(new nn.Conv2d(3, 5, 3, { engine, stride: 2, padding: 1 })),
      new nn.LeakyReLU(0.2),
      new nn.Flatten(),
      nn.spectralNorm(new nn.Linear(5 * 3 * 3, 4, { engine })),
    );

  it("has PyTorch's names and order, and round-trips through save/load with identical outputs", async () => {
    manualSeed(21);
    const a = make();
    const x = engine.tensor(randArray(new Rng(6), 2 * 3 * 6 * 6), [2, 3, 6, 6]);
    a.forward(x); // one training step: u, v differ from their initial values
    const dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-sn-'));
    const path = join(dir, 'sn.safetensors');
    await save(a, path);
    const { tensors } = readSafetensors(path);
    expect(Object.keys(tensors)).toEqual([
      '0.bias', '0.weight_orig', '0.weight_u', '0.weight_v',
      '3.bias', '3.weight_orig', '3.weight_u', '3.weight_v',
    ]);
    expect(tensors['0.weight_orig'].shape).toEqual([5, 3, 3, 3]);
    expect(tensors['0.weight_u'].shape).toEqual([5]);
    expect(tensors['0.weight_v'].shape).toEqual([27]);
    expect(tensors['3.weight_u'].shape).toEqual([4]);
    expect(tensors['3.weight_v'].shape).toEqual([45]);

    manualSeed(22); // other weights and u, v until loaded
    const b = make();
    load(b, path);
    const sa = await a.stateDict();
    const sb = await b.stateDict();
    for (const k of Object.keys(sa)) expect(sb[k].data, k).toEqual(sa[k].data);
    a.eval();
    b.eval();
    expect(await f32(b.forward(x))).toEqual(await f32(a.forward(x)));
    a.train();
    b.train();
    expect(await f32(b.forward(x))).toEqual(await f32(a.forward(x))); // same power step from the same u
    expect(await f32(nn.spectralNormOf(b.layers[0])!.u)).toEqual(await f32(nn.spectralNormOf(a.layers[0])!.u));
  });

  it('refuses ConvTranspose2d and a second application', () => {
    expect(() => nn.spectralNorm(new nn.ConvTranspose2d(2, 3, 4, { engine }) as unknown as nn.Conv2d)).toThrow(/Conv2d and Linear/);
    const l = nn.spectralNorm(new nn.Linear(3, 2, { engine }));
    expect(() => nn.spectralNorm(l)).toThrow(/already/);
  });

  it.skipIf(!torchAvailable())('loads into torch spectral_norm modules with strict=True; torch gives the same training forward and u, v', async () => {
    manualSeed(23);
    const a = make();
    const dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-sn-torch-'));
    const path = join(dir, 'sn.safetensors');
    await save(a, path);
    const xData = randArray(new Rng(7), 2 * 3 * 6 * 6);
    const y = await f32(a.forward(engine.tensor(xData, [2, 3, 6, 6])));
    const s = await a.stateDict();
    const script = `
from torch.nn.utils import spectral_norm
state = read_safetensors(sys.argv[1])
m = nn.Sequential(spectral_norm(nn.Conv2d(3, 5, 3, stride=2, padding=1)), nn.LeakyReLU(0.2), nn.Flatten(), spectral_norm(nn.Linear(45, 4))).double()
m.load_state_dict(state, strict=True)
m.train()
x = torch.tensor(json.loads(sys.argv[2]), dtype=torch.float64).reshape(2, 3, 6, 6)
with torch.no_grad():
    y = m(x)
print(json.dumps({'y': y.flatten().tolist(), 'u0': m[0].weight_u.tolist(), 'v3': m[3].weight_v.tolist()}))
`;
    const out = runTorchJson<{ y: number[]; u0: number[]; v3: number[] }>(script, [path, JSON.stringify(Array.from(xData))]);
    // torch in float64 from the same float32 state: float32 rounding only.
    expectClose(y, out.y, 1e-5, 'forward vs torch');
    expectClose(await f32(nn.spectralNormOf(a.layers[0])!.u), out.u0, 1e-5, 'conv u vs torch');
    expectClose(await f32(nn.spectralNormOf(a.layers[3])!.v), out.v3, 1e-5, 'linear v vs torch');
    expect(Object.keys(s)).toContain('3.weight_orig');
  });
});

describe('spectrally normalised DCGAN discriminator', () => {
  it('has spectral norm on every conv and the embedding, no BatchNorm by default, and trains with finite, changing losses', async () => {
    const c = resolveGanConfig({ arch: 'dcgan', imageSize: 16, classes: ['a', 'b'], latentDim: 6, ngf: 4, ndf: 4, spectralNorm: true });
    expect(c.discriminatorBatchNorm).toBe(false);
    manualSeed(31);
    const G = new Generator(c, engine);
    const D = new Discriminator(c, engine);
    const names = Object.keys(await D.stateDict());
    expect(names.filter((n) => n.endsWith('.weight_orig')).sort()).toEqual(['body.0.weight_orig', 'body.2.weight_orig', 'embed.weight_orig', 'head.weight_orig']);
    expect(names.some((n) => n.includes('running_mean'))).toBe(false);
    expect(names.some((n) => n.endsWith('.weight'))).toBe(false);
    const step = new GanStep(G, D, { lrG: 2e-3, lrD: 2e-3, seed: 7 });
    const n = 4;
    const labels = Int32Array.from({ length: n }, (_, i) => i % 2);
    const real = Float32Array.from(randArray(new Rng(8), n * 16 * 16), (v) => (v + 1) / 2);
    const losses: number[][] = [];
    for (let i = 0; i < 2; i++) {
      const l = step.step(real, labels, i);
      losses.push([await l.lossD.item(), await l.lossG.item()]);
    }
    for (const [d, g] of losses) {
      expect(Number.isFinite(d) && Number.isFinite(g)).toBe(true);
    }
    expect(losses[1][0]).not.toBe(losses[0][0]);
    expect(losses[1][1]).not.toBe(losses[0][1]);
    step.dispose();
    G.dispose();
    D.dispose();
  });

  it('GAN steps leave no tensor behind: every forward\'s u, v and sigma are released or stored', async () => {
    const c = resolveGanConfig({ arch: 'dcgan', imageSize: 16, classes: ['a', 'b'], latentDim: 6, ngf: 4, ndf: 4, spectralNorm: true });
    manualSeed(32);
    const G = new Generator(c, engine);
    const D = new Discriminator(c, engine);
    const step = new GanStep(G, D, { seed: 9 });
    const labels = Int32Array.from({ length: 4 }, (_, i) => i % 2);
    const real = Float32Array.from(randArray(new Rng(10), 4 * 16 * 16), (v) => (v + 1) / 2);
    let mem = engine.memory();
    for (let i = 0; i < 40; i++) {
      const l = step.step(real, labels, i);
      for (const t of [l.lossD, l.lossG, l.dReal, l.dFake]) t.dispose();
      if (i === 9) {
        await engine.sync();
        mem = engine.memory();
      }
    }
    await engine.sync();
    // Tensors alive (what a leak grows); the pool's total may still settle as sizes recur in new orders.
    expect(engine.memory().bytesInUse).toBe(mem.bytesInUse);
    expect(engine.memory().liveBuffers).toBe(mem.liveBuffers);
    step.dispose();
    G.dispose();
    D.dispose();
  });

  it('keeps BatchNorm when asked; a config without the field (an old model directory) has no spectral norm', () => {
    expect(resolveGanConfig({ arch: 'dcgan', imageSize: 16, classes: ['a'], spectralNorm: true, discriminatorBatchNorm: true }).discriminatorBatchNorm).toBe(true);
    const old = resolveGanConfig({ arch: 'dcgan', imageSize: 16, classes: ['a'], discriminatorBatchNorm: true });
    expect(old.spectralNorm).toBe(false);
    manualSeed(32);
    const D = new Discriminator(old, engine);
    const names = D.namedParameters().map(([name]) => name);
    expect(names).toContain('body.0.weight');
    expect(names.some((name) => name.endsWith('weight_orig'))).toBe(false);
    D.dispose();
  });
});

describe('trainGan with spectralNorm: model directory, loading, --resume', () => {
  let dir: string;
  let data: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-sn-gan-'));
    data = join(dir, 'data');
    await generateSynthetic({ outDir: data, perClass: 10, size: 24, seed: 3 });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const tiny = (out: string, extra: Partial<GanTrainOptions> = {}): GanTrainOptions =>
    tinyGanOptions(data, out, engine, { batchSize: 4, className: 'crack', spectralNorm: true, sampleEvery: 0, ...extra });
  const weights = async (modelDir: string): Promise<Float32Array[]> => {
    const { generator, discriminator } = loadGanDir(modelDir, engine, { discriminator: true });
    const all = [...generator.namedParameters(), ...discriminator!.namedParameters(), ...discriminator!.namedBuffers()];
    const out = await Promise.all(all.map(async ([, t]) => f32(t)));
    generator.dispose();
    discriminator!.dispose();
    return out;
  };

  it('records the option in the architecture, loads back, and resumes to the same weights, u and v as an uninterrupted run', async () => {
    const straight = join(dir, 'straight');
    const resumed = join(dir, 'resumed');
    const r = await trainGan(tiny(straight));
    expect(r.history.every((h) => Number.isFinite(h.lossD) && Number.isFinite(h.lossG))).toBe(true);
    const meta = readGanMetadata(straight);
    expect(meta.architecture.spectralNorm).toBe(true);
    expect(meta.architecture.discriminatorBatchNorm).toBe(false);
    const { discriminator } = loadGanDir(straight, engine, { discriminator: true });
    expect(nn.spectralNormOf(discriminator!.head)).not.toBeNull();
    discriminator!.dispose();
    await trainGan(tiny(resumed, { epochs: 1 }));
    await trainGan(tiny(resumed, { epochs: 2, resume: true }));
    const a = await weights(straight);
    const b = await weights(resumed);
    expect(b.every((t, i) => t.every((v, j) => v === a[i][j]))).toBe(true);
  });

  it('a model directory written before the option (no spectralNorm field) loads without spectral norm', async () => {
    const out = join(dir, 'plain');
    await trainGan(tiny(out, { spectralNorm: undefined, epochs: 1 }));
    const path = join(out, 'model.json');
    const json = JSON.parse(readFileSync(path, 'utf8'));
    delete json.architecture.spectralNorm;
    writeFileSync(path, JSON.stringify(json));
    const { meta, discriminator } = loadGanDir(out, engine, { discriminator: true });
    expect(meta.architecture.spectralNorm).toBeUndefined();
    expect(nn.spectralNormOf(discriminator!.head)).toBeNull();
    expect(discriminator!.namedBuffers().some(([n]) => n.includes('running_mean'))).toBe(true);
    discriminator!.dispose();
  });
});
