// The DCGAN generator's resize-convolution option (GanConfig.upsampling 'nearest': Upsample(2) +
// Conv2d(3, 1, 1) in place of each stride-2 ConvTranspose2d(4, 2, 1)): why it exists (a constant input
// gives a constant output, where the transposed convolution draws a period-2 pattern), torch's
// state-dict layout, training, the model directory and --resume, and the refusals. When PyTorch is
// installed, the saved generator loads into the torch module of the docstring with strict=True and
// gives the same eval forward.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { generateSynthetic } from '../src/data/synthetic.js';
import { Generator, latentBatch, resolveGanConfig } from '../src/gan/models.js';
import { loadGanDir, readGanMetadata } from '../src/gan/model-dir.js';
import { trainGan, type GanTrainOptions } from '../src/gan/train.js';
import { manualSeed, nn, type Tensor } from '../src/nn/index.js';
import { Rng } from '../src/util/rng.js';
import { randArray, rng, testEngine, tinyGanOptions } from './helpers.js';
import { torchAvailable } from './torch-python.js';
import { expectGeneratorMatchesTorch } from './generator-torch.js';

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

const f32 = async (t: Tensor): Promise<Float32Array> => Float32Array.from(await t.toArray());
const config = resolveGanConfig({ arch: 'dcgan', imageSize: 16, classes: ['a', 'b', 'c'], latentDim: 5, ngf: 4, upsampling: 'nearest' });

describe('resize-convolution upsampling in the DCGAN generator', () => {
  it('a constant map stays constant through Upsample + Conv2d (away from the zero padding); ConvTranspose2d(4, 2, 1) draws a period-2 pattern', async () => {
    manualSeed(4);
    const C = 3;
    const x = engine.tensor(new Float32Array(C * 6 * 6).fill(0.7), [1, C, 6, 6]);
    const resize = new nn.Sequential(new nn.Upsample(2), new nn.Conv2d(C, 2, 3, { engine, padding: 1, bias: false }));
    const transposed = new nn.ConvTranspose2d(C, 2, 4, { engine, stride: 2, padding: 1, bias: false });
    for (const m of [resize, transposed])
      for (const p of m.parameters()) p.setValue(engine.fromArray(randArray(rng(p.size), p.size), p.shape));
    // Interior pixels (2 px from the edge) of each output channel: how far they spread.
    const spread = async (y: Tensor): Promise<number> => {
      const v = await f32(y);
      let worst = 0;
      for (let c = 0; c < 2; c++) {
        const interior: number[] = [];
        for (let i = 2; i < 10; i++) for (let j = 2; j < 10; j++) interior.push(v[c * 144 + i * 12 + j]);
        worst = Math.max(worst, Math.max(...interior) - Math.min(...interior));
      }
      return worst;
    };
    expect(await spread(resize.forward(x))).toBeLessThan(1e-5);
    expect(await spread(transposed.forward(x))).toBeGreaterThan(0.05);
    resize.dispose();
    transposed.dispose();
  });

  it("has torch's state-dict layout: an Upsample (no state) before each 3x3 Conv2d, the first block unchanged", async () => {
    manualSeed(5);
    const G = new Generator(config, engine);
    const shapes = Object.fromEntries(G.namedParameters().map(([k, t]) => [k, t.shape]));
    expect(shapes).toEqual({
      'net.0.weight': [8, 8, 4, 4], // ConvTranspose2d(nz + K, 2 ngf, 4, 1, 0): 1x1 -> 4x4
      'net.1.weight': [8],
      'net.1.bias': [8],
      'net.4.weight': [4, 8, 3, 3], // net.3 is Upsample(2)
      'net.5.weight': [4],
      'net.5.bias': [4],
      'net.8.weight': [1, 4, 3, 3], // net.7 is Upsample(2)
    });
    expect(G.net.layers[3]).toBeInstanceOf(nn.Upsample);
    const z = latentBatch(config, [0, 2, 1], () => new Rng(3).normal());
    const y = await f32(G.forward(engine.tensor(z, [3, G.inputDim])));
    expect(y.length).toBe(3 * 16 * 16);
    expect(y.every((v) => v > -1 && v < 1)).toBe(true);
    expect(new Set(y).size).toBeGreaterThan(y.length / 2);
    G.dispose();
  });

  it('is refused for the dense GAN and for an unknown value; a config without the field is the transposed generator', () => {
    expect(() => resolveGanConfig({ arch: 'dense', imageSize: 8, classes: ['a'], upsampling: 'nearest' })).toThrow(/nearest upsampling is a DCGAN generator option/);
    expect(() => resolveGanConfig({ arch: 'dcgan', imageSize: 16, classes: ['a'], upsampling: 'bilinear' as never })).toThrow(/unknown generator upsampling 'bilinear'/);
    expect(resolveGanConfig({ arch: 'dcgan', imageSize: 16, classes: ['a'] }).upsampling).toBe('transposed');
  });

  it.skipIf(!torchAvailable())('loads into the torch module of its docstring with strict=True and gives the same eval forward', async () => {
    manualSeed(8);
    const G = new Generator(config, engine);
    const script = `
state = read_safetensors(sys.argv[1])
nz, K, ngf = 5, 3, 4
net = nn.Sequential(
    nn.ConvTranspose2d(nz + K, ngf * 2, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(),
    nn.Upsample(scale_factor=2, mode='nearest'), nn.Conv2d(ngf * 2, ngf, 3, 1, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(),
    nn.Upsample(scale_factor=2, mode='nearest'), nn.Conv2d(ngf, 1, 3, 1, 1, bias=False), nn.Tanh())
G = nn.Module(); G.net = net
G.double().load_state_dict(state, strict=True)
G.eval()
z = torch.tensor(json.loads(sys.argv[2]), dtype=torch.float64).reshape(3, nz + K)
with torch.no_grad():
    y = net(z[:, :, None, None])
print(json.dumps(y.flatten().tolist()))
`;
    await expectGeneratorMatchesTorch(G, engine, script);
    G.dispose();
  });
});

describe('trainGan with nearest upsampling: model directory, loading, --resume', () => {
  let dir: string;
  let data: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-resize-gan-'));
    data = join(dir, 'data');
    await generateSynthetic({ outDir: data, perClass: 8, size: 24, seed: 3 });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const tiny = (out: string, extra: Partial<GanTrainOptions> = {}): GanTrainOptions =>
    tinyGanOptions(data, out, engine, { batchSize: 4, className: 'crack', spectralNorm: true, upsampling: 'nearest', sampleEvery: 0, ...extra });
  const weights = async (modelDir: string): Promise<Float32Array[]> => {
    const { generator } = loadGanDir(modelDir, engine);
    const out = await Promise.all([...generator.namedParameters(), ...generator.namedBuffers()].map(async ([, t]) => f32(t)));
    generator.dispose();
    return out;
  };

  it('records the option, loads it back, and resumes to the same weights as an uninterrupted run', async () => {
    const straight = join(dir, 'straight');
    const resumed = join(dir, 'resumed');
    const r = await trainGan(tiny(straight));
    expect(r.history.every((h) => Number.isFinite(h.lossD) && Number.isFinite(h.lossG))).toBe(true);
    expect(readGanMetadata(straight).architecture.upsampling).toBe('nearest');
    const { generator } = loadGanDir(straight, engine);
    expect(generator.net.layers.filter((m) => m instanceof nn.Upsample)).toHaveLength(2);
    generator.dispose();
    await trainGan(tiny(resumed, { epochs: 1 }));
    await trainGan(tiny(resumed, { epochs: 2, resume: true }));
    const a = await weights(straight);
    const b = await weights(resumed);
    expect(b.every((t, i) => t.every((v, j) => v === a[i][j]))).toBe(true);
    // Resuming with the other generator is refused (the checkpoint's architecture differs).
    await expect(trainGan(tiny(resumed, { epochs: 3, resume: true, upsampling: 'transposed' }))).rejects.toThrow(/upsampling/);
  });

  it('a model directory written before the option (no upsampling field) loads the transposed generator', async () => {
    const out = join(dir, 'plain');
    await trainGan(tiny(out, { upsampling: undefined, epochs: 1 }));
    const path = join(out, 'model.json');
    const json = JSON.parse(readFileSync(path, 'utf8'));
    expect(json.architecture.upsampling).toBe('transposed');
    delete json.architecture.upsampling;
    writeFileSync(path, JSON.stringify(json));
    const { generator } = loadGanDir(out, engine);
    expect(generator.net.layers.filter((m) => m instanceof nn.ConvTranspose2d)).toHaveLength(3);
    expect(generator.net.layers.some((m) => m instanceof nn.Upsample)).toBe(false);
    generator.dispose();
  });
});
