// Conditional BatchNorm (ConditionalBatchNorm2d in src/gan/models.ts) against float64 CPU computations:
// the training forward (batch statistics, each sample scaled and shifted by its class's column) and the
// running statistics it leaves; the eval forward; gradients of x and both class tables against central
// differences of the float64 function (a class absent from the batch gets exactly zero). Then the DCGAN
// generator built with it: state-dict names (no affine BatchNorm weight), the class reaching the output,
// a save/load round trip, and the rejection of a configuration it does not apply to. When PyTorch is
// installed (/usr/bin/python3 -c "import torch"), the saved generator loads into the torch module the
// docstring describes with strict=True and gives the same eval forward; without torch that is skipped.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { ConditionalBatchNorm2d, Generator, latentBatch, resolveGanConfig } from '../src/gan/models.js';
import { load, manualSeed, save, type Tensor } from '../src/nn/index.js';
import { Rng } from '../src/util/rng.js';
import { dot, expectClose, numericalGrad, randArray, testEngine } from './helpers.js';
import { torchAvailable } from './torch-python.js';
import { expectGeneratorMatchesTorch } from './generator-torch.js';

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const f32 = async (t: Tensor): Promise<Float32Array> => Float32Array.from(await t.toArray());
const EPS = 1e-5;

// Awkward shape: N 5, C 3, H 3, W 2, 4 classes of which the batch uses 0, 1, 2 (class 3 absent).
const [N, C, H, W, K] = [5, 3, 3, 2, 4];
const labels = [0, 2, 0, 2, 1];
const onehot = (ls: number[]) => {
  const o = new Float32Array(ls.length * K);
  ls.forEach((l, i) => (o[i * K + l] = 1));
  return o;
};

/** float64 reference of the training forward: per-channel batch mean / biased variance, then the class's gamma, beta. */
function referenceTrain(x: ArrayLike<number>, gamma: ArrayLike<number>, beta: ArrayLike<number>) {
  const y = new Float64Array(N * C * H * W);
  const mean = new Float64Array(C);
  const varBiased = new Float64Array(C);
  const m = N * H * W;
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) for (let p = 0; p < H * W; p++) s += x[(n * C + c) * H * W + p];
    mean[c] = s / m;
    let v = 0;
    for (let n = 0; n < N; n++) for (let p = 0; p < H * W; p++) v += (x[(n * C + c) * H * W + p] - mean[c]) ** 2;
    varBiased[c] = v / m;
    for (let n = 0; n < N; n++)
      for (let p = 0; p < H * W; p++) {
        const i = (n * C + c) * H * W + p;
        // gamma.weight / beta.weight are [C, K] (Linear(K, C)): class k's scale is column k.
        y[i] = ((x[i] - mean[c]) / Math.sqrt(varBiased[c] + EPS)) * gamma[c * K + labels[n]] + beta[c * K + labels[n]];
      }
  }
  return { y, mean, varUnbiased: Array.from(varBiased, (v) => (v * m) / (m - 1)) };
}

describe('ConditionalBatchNorm2d', () => {
  const r = new Rng(11);
  const xData = Float32Array.from(randArray(r, N * C * H * W, 2), (v, i) => v + (i % 3)); // channel offsets
  const gData = Float32Array.from(randArray(r, C * K, 0.5), (v) => 1 + v);
  const bData = randArray(r, C * K, 0.5);
  const dy = randArray(r, N * C * H * W);

  const make = () => {
    const m = new ConditionalBatchNorm2d(C, K, { engine });
    m.gamma.weight.setValue(engine.fromArray(gData, [C, K]));
    m.beta.weight.setValue(engine.fromArray(bData, [C, K]));
    return m;
  };

  it('training forward and running statistics match float64; state has no affine BatchNorm weight', async () => {
    const m = make();
    const y = m.forward(engine.tensor(xData, [N, C, H, W]), engine.tensor(onehot(labels), [N, K]));
    const ref = referenceTrain(xData, gData, bData);
    expectClose(await f32(y), ref.y, 1e-4, 'y');
    expectClose(await f32(m.bn.runningMean), Array.from(ref.mean, (v) => 0.1 * v), 1e-4, 'running mean');
    expectClose(await f32(m.bn.runningVar), ref.varUnbiased.map((v) => 0.9 + 0.1 * v), 1e-4, 'running var');
    const keys = Object.keys(await m.stateDict()).sort();
    expect(keys).toEqual(['beta.weight', 'bn.num_batches_tracked', 'bn.running_mean', 'bn.running_var', 'gamma.weight']);
    expect(m.parameters().length).toBe(2);
    m.dispose();
  });

  it('eval forward uses the running statistics', async () => {
    const m = make();
    const rm = randArray(new Rng(3), C);
    const rv = Float32Array.from(randArray(new Rng(4), C), (v) => 0.5 + Math.abs(v));
    m.bn.runningMean.setValue(engine.fromArray(rm, [C]));
    m.bn.runningVar.setValue(engine.fromArray(rv, [C]));
    m.eval();
    const y = await f32(m.forward(engine.tensor(xData, [N, C, H, W]), engine.tensor(onehot(labels), [N, K])));
    const ref = Array.from(xData, (v, i) => {
      const n = Math.floor(i / (C * H * W));
      const c = Math.floor(i / (H * W)) % C;
      return ((v - rm[c]) / Math.sqrt(rv[c] + EPS)) * gData[c * K + labels[n]] + bData[c * K + labels[n]];
    });
    expectClose(y, ref, 1e-5, 'eval y');
    m.dispose();
  });

  it('gradients of x, gamma and beta match central differences of the float64 function', async () => {
    const m = make();
    const x = engine.tensor(xData, [N, C, H, W]);
    x.requiresGrad = true;
    const y = m.forward(x, engine.tensor(onehot(labels), [N, K]));
    y.backward(engine.tensor(dy, y.shape));
    const gx = await f32(x.grad!);
    const gg = await f32(m.gamma.weight.grad!);
    const gb = await f32(m.beta.weight.grad!);
    expectClose(gx, numericalGrad((v) => dot(dy, referenceTrain(v, gData, bData).y), xData), 1e-3, 'dx');
    expectClose(gg, numericalGrad((v) => dot(dy, referenceTrain(xData, v, bData).y), gData), 1e-3, 'dgamma');
    expectClose(gb, numericalGrad((v) => dot(dy, referenceTrain(xData, gData, v).y), bData), 1e-3, 'dbeta');
    // Class 3 is not in the batch: its columns get exactly zero.
    for (let c = 0; c < C; c++) expect([gg[c * K + 3], gb[c * K + 3]]).toEqual([0, 0]);
    m.dispose();
  });

  it('refuses a call without the classes', () => {
    const m = make();
    expect(() => m.forward(engine.tensor(xData, [N, C, H, W]))).toThrow(/one-hot/);
    m.dispose();
  });
});

describe('DCGAN generator with conditional BatchNorm', () => {
  const config = resolveGanConfig({ arch: 'dcgan', imageSize: 16, classes: ['a', 'b', 'c'], latentDim: 5, ngf: 4, conditionalBatchNorm: true });

  it('is refused where it does not apply (one class, the dense GAN)', () => {
    expect(() => resolveGanConfig({ arch: 'dcgan', imageSize: 16, classes: ['a'], conditionalBatchNorm: true })).toThrow(/conditional BatchNorm needs a class-conditional DCGAN/);
    expect(() => resolveGanConfig({ arch: 'dense', imageSize: 8, classes: ['a', 'b'], conditionalBatchNorm: true })).toThrow(/conditional BatchNorm/);
  });

  it("has torch's state-dict names, lets the class reach the output, and saves and reloads exactly", async () => {
    manualSeed(5);
    const G = new Generator(config, engine);
    const keys = Object.keys(await G.stateDict());
    expect(keys).toContain('net.1.gamma.weight');
    expect(keys).toContain('net.4.bn.running_var');
    expect(keys.some((k) => /^net\.\d+\.bn\.weight$/.test(k))).toBe(false);
    // DCGAN initialisation: every class's scale N(1, 0.02), shifts 0.
    const gamma = await f32((G.net.layers[1] as ConditionalBatchNorm2d).gamma.weight);
    expect(Math.abs(gamma.reduce((s, v) => s + v, 0) / gamma.length - 1)).toBeLessThan(0.02);
    expect((await f32((G.net.layers[1] as ConditionalBatchNorm2d).beta.weight)).every((v) => v === 0)).toBe(true);
    // Give class 2 its own scale: the same noise with class 0 and class 2 gives different images.
    const cbn = G.net.layers[4] as ConditionalBatchNorm2d;
    const g = await f32(cbn.gamma.weight);
    for (let c = 0; c < g.length / 3; c++) g[c * 3 + 2] = -2 + c * 0.3;
    cbn.gamma.weight.setValue(engine.fromArray(g, cbn.gamma.weight.shape));
    G.eval();
    const noise = new Rng(9);
    const z = latentBatch(config, [0, 2], () => noise.normal());
    z.copyWithin(G.inputDim, 0, config.latentDim); // the second row's noise = the first's
    const y = await f32(G.forward(engine.tensor(z, [2, G.inputDim])));
    const px = 16 * 16;
    // (DCGAN-initialised outputs are small: the difference is measured against their size.)
    const largest = y.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const differs = y.subarray(0, px).reduce((m, v, i) => Math.max(m, Math.abs(v - y[px + i])), 0);
    expect(largest).toBeGreaterThan(0);
    expect(differs / largest).toBeGreaterThan(0.05);

    const dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-cbn-'));
    try {
      await save(G, join(dir, 'g.safetensors'));
      const G2 = new Generator(config, engine);
      load(G2, join(dir, 'g.safetensors'));
      G2.eval();
      expect(await f32(G2.forward(engine.tensor(z, [2, G.inputDim])))).toEqual(y);
      G2.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    G.dispose();
  });

  it.skipIf(!torchAvailable())('loads into the torch module of its docstring with strict=True and gives the same eval forward', async () => {
    manualSeed(8);
    const G = new Generator(config, engine);
    const script = `
state = read_safetensors(sys.argv[1])
class ConditionalBatchNorm2d(nn.Module):
    def __init__(self, C, K):
        super().__init__()
        self.bn = nn.BatchNorm2d(C, affine=False)
        self.gamma = nn.Linear(K, C, bias=False)
        self.beta = nn.Linear(K, C, bias=False)
    def forward(self, x, y):
        return self.bn(x) * self.gamma(y)[:, :, None, None] + self.beta(y)[:, :, None, None]
nz, K, ngf = 5, 3, 4
net = nn.Sequential(
    nn.ConvTranspose2d(nz + K, ngf * 2, 4, 1, 0, bias=False), ConditionalBatchNorm2d(ngf * 2, K), nn.ReLU(),
    nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), ConditionalBatchNorm2d(ngf, K), nn.ReLU(),
    nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh())
G = nn.Module(); G.net = net
G.double().load_state_dict(state, strict=True)
G.eval()
z = torch.tensor(json.loads(sys.argv[2]), dtype=torch.float64).reshape(3, nz + K)
h, y = z[:, :, None, None], z[:, nz:]
with torch.no_grad():
    for m in net:
        h = m(h, y) if isinstance(m, ConditionalBatchNorm2d) else m(h)
print(json.dumps(h.flatten().tolist()))
`;
    await expectGeneratorMatchesTorch(G, engine, script);
    G.dispose();
  });
});
