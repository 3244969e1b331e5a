// GAN training end to end on a tiny synthetic dataset: the trainer (shared loop, checkpoints, sample
// grids, snapshots), resume, the model directory, sampling into a dataset `wgsl-nn train` reads, and
// clear errors for bad input. Tiny sizes (16x16, widths 4, 2-3 epochs) keep it to seconds on lavapipe.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanDataset } from '../src/data/dataset.js';
import { Inspector } from '../src/cnn/inspector.js';
import { generateSynthetic } from '../src/data/synthetic.js';
import type { Engine } from '../src/gpu/engine.js';
import { loadGanDir, readGanMetadata } from '../src/gan/model-dir.js';
import { ModelFormatError } from '../src/model-dir.js';
import { generateImages, latentNoise, type SampleFilter, writeSampleFolders } from '../src/gan/samples.js';
import { classifierFilter } from '../src/gan/classifier-filter.js';
import { toModelSize } from '../src/gan/features.js';
import { Rng } from '../src/util/rng.js';
import { trainGan, type GanTrainOptions } from '../src/gan/train.js';
import { formatGanScore, scoreGan } from '../src/gan/score.js';
import { gridExcess, meanPowerSpectrum } from '../src/gan/spectrum.js';
import { resizeBilinear } from '../src/data/augment.js';
import { loadGray } from '../src/data/images.js';
import { trainClassifier } from '../src/cnn/train.js';
import { loadModelDir, readModelMetadata } from '../src/cnn/model-dir.js';
import { readSafetensors } from '../src/nn/serialize.js';
import { checkpointPartPath } from '../src/train/checkpoint.js';
import { runCli, testEngine, tinyGanOptions } from './helpers.js';

let engine: Engine;
let dir: string;
let data: string;

beforeAll(async () => {
  engine = await testEngine();
  dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-gan-'));
  data = join(dir, 'data');
  await generateSynthetic({ outDir: data, perClass: 10, size: 24, seed: 3 });
});
afterAll(() => {
  engine.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const tiny = (out: string, extra: Partial<GanTrainOptions> = {}): GanTrainOptions => tinyGanOptions(data, out, engine, extra);

async function generatorWeights(modelDir: string): Promise<Float32Array[]> {
  const { generator } = loadGanDir(modelDir, engine);
  const w = await Promise.all(generator.parameters().map(async (p) => Float32Array.from(await p.toArray())));
  generator.dispose();
  return w;
}

describe('trainGan', () => {
  it('trains a class-conditional DCGAN: finite, changing losses, diversity, sample grids, snapshots, model directory', async () => {
    const out = join(dir, 'cond');
    const r = await trainGan(tiny(out, { saveEvery: 1 }));
    expect(r.history.map((h) => h.epoch)).toEqual([1, 2]);
    for (const h of r.history) {
      expect([h.lossD, h.lossG, h.dReal, h.dFake, h.diversity].every(Number.isFinite)).toBe(true);
      expect(h.diversity).toBeGreaterThan(0);
    }
    expect(r.history[0].lossG).not.toBe(r.history[1].lossG);
    const meta = readGanMetadata(out);
    expect(meta.classes).toEqual(['clean', 'crack', 'inclusion', 'patch', 'scratch', 'spot']);
    expect(meta.architecture.arch).toBe('dcgan');
    // The grid PNG decodes: 6 classes x 2 per class... one row per class, tiles of 16 px with 2 px gaps.
    const grid = await sharp(join(out, 'samples', 'epoch-0002.png')).metadata();
    const perClass = Math.max(2, Math.min(16, Math.floor(64 / 6)));
    expect(grid.width).toBe(perClass * 16 + (perClass + 1) * 2);
    expect(grid.height).toBe(6 * 16 + 7 * 2);
    expect(existsSync(join(out, 'snapshots', 'epoch-0001', 'generator.safetensors'))).toBe(true);
    expect(readGanMetadata(join(out, 'snapshots', 'epoch-0001')).training?.epochs).toBe(1);
  });

  it('--resume continues to the same weights as an uninterrupted run', async () => {
    const straight = join(dir, 'straight');
    const resumed = join(dir, 'resumed');
    await trainGan(tiny(straight, { className: 'crack', epochs: 2 }));
    await trainGan(tiny(resumed, { className: 'crack', epochs: 1 }));
    const r = await trainGan(tiny(resumed, { className: 'crack', epochs: 2, resume: true }));
    expect(r.history.map((h) => h.epoch)).toEqual([1, 2]);
    const a = await generatorWeights(straight);
    const b = await generatorWeights(resumed);
    expect(b.every((t, i) => t.every((v, j) => v === a[i][j]))).toBe(true);
  });

  it('--ema saves the weight average as the generator (the trained one stays in the checkpoint) and resumes to the same weights', async () => {
    const straight = join(dir, 'ema-straight');
    const resumed = join(dir, 'ema-resumed');
    const ema = { className: 'crack', emaDecay: 0.5 };
    await trainGan(tiny(straight, { ...ema, epochs: 2 }));
    expect(readGanMetadata(straight).training).toMatchObject({ emaDecay: 0.5 });
    // The saved generator is the average: not the trained weights the checkpoint holds.
    const saved = await generatorWeights(straight);
    const part = (name: string) => readSafetensors(checkpointPartPath(join(straight, 'checkpoint'), `${name}.safetensors`)).tensors;
    const trained = part('generator');
    const average = part('generatorAverage');
    const first = Object.keys(trained).find((k) => k.endsWith('weight'))!;
    expect(Array.from(trained[first].data as Float32Array)).not.toEqual(Array.from(average[first].data as Float32Array));
    expect(saved.some((t) => t.every((v, j) => v === (average[first].data as Float32Array)[j]))).toBe(true);
    await trainGan(tiny(resumed, { ...ema, epochs: 1 }));
    const r = await trainGan(tiny(resumed, { ...ema, epochs: 2, resume: true }));
    expect(r.history.map((h) => h.epoch)).toEqual([1, 2]);
    const b = await generatorWeights(resumed);
    expect(b.every((t, i) => t.every((v, j) => v === saved[i][j]))).toBe(true);
    // A checkpoint written with --ema does not resume without it (the options differ).
    await expect(trainGan(tiny(resumed, { className: 'crack', epochs: 3, resume: true }))).rejects.toThrow(/emaDecay|options/i);
  });

  it('--d-steps records the discriminator steps per generator step, trains otherwise than one step, and resumes only with the same count', async () => {
    const two = join(dir, 'd-steps-2');
    const one = join(dir, 'd-steps-1');
    const opts = { className: 'crack', spectralNorm: true, sampleEvery: 0, epochs: 1 };
    const r = await trainGan(tiny(two, { ...opts, discriminatorSteps: 2 }));
    expect(r.history.every((h) => Number.isFinite(h.lossD) && Number.isFinite(h.lossG))).toBe(true);
    expect(readGanMetadata(two).training).toMatchObject({ discriminatorSteps: 2 });
    await trainGan(tiny(one, opts));
    expect(readGanMetadata(one).training).not.toHaveProperty('discriminatorSteps');
    const [a, b] = [await generatorWeights(two), await generatorWeights(one)];
    expect(a.some((t, i) => t.some((v, j) => v !== b[i][j]))).toBe(true);
    await expect(trainGan(tiny(two, { ...opts, epochs: 2, resume: true }))).rejects.toThrow(/discriminatorSteps|options/i);
    const resumed = await trainGan(tiny(two, { ...opts, discriminatorSteps: 2, epochs: 2, resume: true }));
    expect(resumed.history.map((h) => h.epoch)).toEqual([1, 2]);
  });

  it('trains the dense seed GAN on patches', async () => {
    const out = join(dir, 'dense');
    const r = await trainGan({ data, out, arch: "dense", imageSize: 8, batchSize: 16, epochs: 2, engine, className: "scratch" });
    expect(r.history.every((h) => Number.isFinite(h.lossD) && Number.isFinite(h.lossG))).toBe(true);
    expect(readGanMetadata(out).pixelRange).toBe('unit');
  });
});

describe('sampling and errors', () => {
  it('gan sample writes one folder per class that the classifier trainer reads as a dataset', async () => {
    const out = join(dir, 'sampled');
    const { generator } = loadGanDir(join(dir, 'cond'), engine);
    const files = await writeSampleFolders(generator, out, 3, 5);
    generator.dispose();
    expect(files).toHaveLength(18);
    const ds = await scanDataset(out, 'multiclass');
    expect(ds.classes).toEqual(['clean', 'crack', 'inclusion', 'patch', 'scratch', 'spot']);
    expect(ds.items).toHaveLength(18);
    const m = await sharp(files[0]).metadata();
    expect([m.width, m.height]).toEqual([16, 16]);
    // The same model and seed, loaded again: the same files, byte for byte.
    const { generator: again } = loadGanDir(join(dir, 'cond'), engine);
    const repeated = await writeSampleFolders(again, join(dir, 'sampled-again'), 3, 5);
    again.dispose();
    expect(repeated.map((f) => f.replace('sampled-again', 'sampled'))).toEqual(files);
    expect(repeated.every((f, i) => readFileSync(f).equals(readFileSync(files[i])))).toBe(true);
  });

  it('wgsl-nn gan sample --standing-stats recomputes the BatchNorm statistics first: same folders, other pixels, the model file untouched', async () => {
    const model = join(dir, 'cond');
    const weights = readFileSync(join(model, 'generator.safetensors'));
    const [plain, standing] = [join(dir, 'cli-plain'), join(dir, 'cli-standing')];
    const a = await runCli(['gan', 'sample', '--model', model, '--count', '2', '--out', plain, '--seed', '3']);
    const b = await runCli(['gan', 'sample', '--model', model, '--count', '2', '--out', standing, '--seed', '3', '--standing-stats', '4']);
    expect([a.code, b.code]).toEqual([0, 0]);
    expect(readdirSync(standing).sort()).toEqual(readdirSync(plain).sort());
    const first = (root: string) => readFileSync(join(root, 'crack', readdirSync(join(root, 'crack')).sort()[0]));
    expect(first(standing).equals(first(plain))).toBe(false);
    expect(readFileSync(join(model, 'generator.safetensors')).equals(weights)).toBe(true);
    const bad = await runCli(['gan', 'sample', '--model', model, '--count', '1', '--out', join(dir, 'cli-bad'), '--standing-stats', '0']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--standing-stats must be a positive integer/);
  }, 120_000);

  it('gan score: per-class FD and KID on a classifier\'s features beside the real-vs-real floor', async () => {
    const classifier = join(dir, 'classifier');
    await trainClassifier({ data, task: 'multiclass', out: classifier, inputSize: 24, channels: [4, 8, 8], epochs: 1, batchSize: 16, engine, valFraction: 0.2 });
    const r = await scoreGan({ model: join(dir, 'cond'), data, classifier, engine, kidSubsets: 5 });
    expect(r.perClass.map((c) => c.className)).toEqual(['clean', 'crack', 'inclusion', 'patch', 'scratch', 'spot']);
    for (const c of r.perClass) {
      expect(c.realImages).toBe(10);
      expect(c.halfSize).toBe(5);
      expect(c.fd).toBeGreaterThan(0);
      expect(c.floorFd).toBeGreaterThanOrEqual(0);
      expect(Number.isFinite(c.kid.mean) && Number.isFinite(c.floorKid.mean)).toBe(true);
    }
    // Two epochs of a 4-wide generator are far from real images: above the floor on average.
    expect(r.meanFd).toBeGreaterThan(r.meanFloorFd);
    expect(formatGanScore(r)).toMatch(/floor/);
    // GAN-test: the real images' agreement is the classifier's recall of each class over all its images (as Inspector decides them).
    const inspector = await Inspector.load(classifier, { engine });
    const ds = await scanDataset(data, 'multiclass');
    const decided = await inspector.inspectBatch(ds.items.map((it) => it.path));
    inspector.dispose();
    for (const c of r.perClass) {
      const mine = ds.items.map((it, i) => [ds.classes[it.label], decided[i].label]).filter(([truth]) => truth === c.className);
      expect(c.realAgreement).toBeCloseTo(mine.filter(([truth, label]) => truth === label).length / mine.length, 6);
      expect(c.classifierAgreement! * c.halfSize).toBeCloseTo(Math.round(c.classifierAgreement! * c.halfSize), 6);
      expect(c.classifierAgreement).toBeGreaterThanOrEqual(0);
      expect(c.classifierAgreement).toBeLessThanOrEqual(1);
    }
    expect(r.meanRealAgreement).toBeCloseTo(r.perClass.reduce((a, c) => a + c.realAgreement!, 0) / 6, 9);
    expect(formatGanScore(r)).toMatch(/GAN-test/);
    // 16 px images have no off-grid neighbours for the periodic-artifact measure: null, and not printed.
    expect(r.perClass.every((c) => c.periodicExcess === null) && r.meanPeriodicExcess === null).toBe(true);
    expect(formatGanScore(r)).not.toMatch(/Periodic/);
    // At 32 px it is measured: the real column is the measure recomputed here on the class's images resized to 32.
    await trainGan(tiny(join(dir, 'cond32'), { imageSize: 32, epochs: 1 }));
    const r32 = await scoreGan({ model: join(dir, 'cond32'), data, classifier, engine, kidSubsets: 5 });
    const items = ds.items.filter((it) => ds.classes[it.label] === 'crack');
    const imgs = await Promise.all(items.map((it) => loadGray(it.path)));
    const resized = new Float32Array(imgs.length * 32 * 32);
    imgs.forEach((img, i) => resizeBilinear(img, 32, resized, i * 32 * 32));
    const crack = r32.perClass.find((c) => c.className === 'crack')!;
    expect(crack.periodicExcess!.real).toBeCloseTo(gridExcess(meanPowerSpectrum(resized, imgs.length, 32), 32).geometricMean, 9);
    expect(r32.perClass.every((c) => c.periodicExcess!.generated > 0 && Number.isFinite(c.periodicExcess!.generated))).toBe(true);
    expect(r32.meanPeriodicExcess!.real).toBeCloseTo(r32.perClass.reduce((a, c) => a + c.periodicExcess!.real, 0) / 6, 9);
    expect(formatGanScore(r32)).toMatch(/Periodic-artifact excess/);
    // The test split recorded by the GAN trainer: 2 of the 10 images per class.
    const t = await scoreGan({ model: join(dir, 'cond'), data, classifier, engine, kidSubsets: 5, testSplit: true }).catch((e: Error) => e);
    expect(t).toBeInstanceOf(Error);
    expect((t as Error).message).toMatch(/at least 8/);
    await expect(scoreGan({ model: join(dir, 'cond'), data: join(dir, 'sampled'), classifier: join(dir, 'nope'), engine })).rejects.toThrow(/model directory not found/);
  });

  it('gan sample --filter-with: a classifier rejection-samples each class; the files are exactly the accepted images', async () => {
    const { generator, meta } = loadGanDir(join(dir, 'cond'), engine);
    const { model, meta: cmeta } = loadModelDir(join(dir, 'classifier'), engine);
    try {
      const S = generator.config.imageSize;
      const filter = classifierFilter(model, { classifierClasses: cmeta.classes, ganClasses: meta.classes, imageSize: S, minConfidence: 0.2 });
      // What the filter must decide, computed apart: the classifier's probabilities of the images resized to its input.
      const imgs = await generateImages(generator, new Int32Array(40).fill(1), new Rng(9));
      const q = Float32Array.from(imgs, (v) => Math.round(Math.min(1, Math.max(0, v)) * 255) / 255);
      const s = model.config.inputSize;
      const resized = new Float32Array(40 * s * s);
      for (let i = 0; i < 40; i++) resized.set(await toModelSize({ width: S, height: S, data: q.subarray(i * S * S, (i + 1) * S * S) }, s), i * s * s);
      const p = await model.predict(resized, 40);
      const K = cmeta.classes.length;
      const target = cmeta.classes.indexOf(meta.classes[1]);
      const expected = Array.from({ length: 40 }, (_, i) => {
        const row = Array.from(p.subarray(i * K, (i + 1) * K));
        return row.indexOf(Math.max(...row)) === target && row[target] >= 0.2;
      });
      expect(Array.from(await filter(q, 40, 1))).toEqual(expected);
      expect(() => classifierFilter(model, { classifierClasses: ['clean', 'crack'], ganClasses: meta.classes, imageSize: S })).toThrow(/no class 'inclusion'/);

      // The writer keeps exactly what a filter accepts, in order, and names the class it is drawing.
      const seen: number[] = [];
      const accepted: Float32Array[] = [];
      const everyOther: SampleFilter = async (images, count, k) => {
        seen.push(k);
        const keep = Array.from({ length: count }, (_, i) => i % 2 === 0);
        keep.forEach((ok, i) => ok && accepted.push(images.slice(i * S * S, (i + 1) * S * S)));
        return keep;
      };
      const rates: Record<string, number> = {};
      const out = join(dir, 'filtered');
      const files = await writeSampleFolders(generator, out, 5, 3, { filter: everyOther, truncation: 0.7, onClass: (c, a, d) => (rates[c] = a / d) });
      expect(files).toHaveLength(30);
      expect(new Set(seen)).toEqual(new Set([0, 1, 2, 3, 4, 5]));
      expect(Object.values(rates)).toEqual(Array(6).fill(0.5));
      // Class 2's files are its first five accepted images (32 accepted per draw of 64).
      for (let i = 0; i < 5; i++) {
        const { data: px } = await sharp(join(out, 'inclusion', `inclusion_0000${i}.png`)).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
        const want = accepted[2 * 32 + i];
        expect(px.length).toBe(S * S);
        for (let j = 0; j < S * S; j++) expect(px[j] / 255).toBeCloseTo(want[j], 6);
      }
      const never: SampleFilter = async (_images, count) => new Array<boolean>(count).fill(false);
      await expect(writeSampleFolders(generator, join(dir, 'filtered-none'), 5, 3, { filter: never })).rejects.toThrow(/only 0 of 5 images of class 'clean' accepted in 128 draws/);
      await expect(writeSampleFolders(generator, join(dir, 'filtered-none'), 5, 3, { filter: never, maxDrawFactor: 0 })).rejects.toThrow(/maxDrawFactor must be >= 1/);
    } finally {
      generator.dispose();
      model.dispose();
    }
  });

  it('the truncation trick draws |z| <= t with the truncated normal\'s spread; unset, the plain normal sequence', () => {
    const t = 0.5;
    const draw = latentNoise(new Rng(4), t);
    const v = Array.from({ length: 20000 }, draw);
    expect(Math.max(...v.map(Math.abs))).toBeLessThanOrEqual(t);
    const m = v.reduce((a, b) => a + b, 0) / v.length;
    const sd = Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length);
    // Var of N(0,1) truncated to [-t, t]: 1 - 2 t phi(t) / (2 Phi(t) - 1) = 0.08057 at t = 0.5 (sd 0.2838).
    expect(Math.abs(m)).toBeLessThan(0.01);
    expect(sd).toBeCloseTo(0.2838, 2);
    const plain = latentNoise(new Rng(4));
    const ref = new Rng(4);
    for (let i = 0; i < 10; i++) expect(plain()).toBe(ref.normal());
    expect(() => latentNoise(new Rng(1), 0.01)).toThrow(/truncation must be a number >= 0.05/);
    expect(() => latentNoise(new Rng(1), Number.NaN)).toThrow(RangeError);
  });

  it('wgsl-nn train --augment-with mixes generated images (pool and balanced); --limit-per-class trains on a scarce subset', async () => {
    const base = { data, task: 'multiclass' as const, inputSize: 24, channels: [4, 8, 8] as [number, number, number], epochs: 2, batchSize: 8, engine };
    const pool = await trainClassifier({ ...base, out: join(dir, 'mix-pool'), augmentWith: join(dir, 'cond'), syntheticRatio: 0.5 });
    const metaPool = readModelMetadata(join(dir, 'mix-pool'));
    // 10 images per class: test 2, val 2 (of 8), train 6 -> 3 generated per class at ratio 0.5.
    expect(metaPool.training?.synthetic).toMatchObject({ ratio: 0.5, sampling: 'pool', perClass: { clean: 3, crack: 3, spot: 3 } });
    expect(pool.test?.count).toBe(12); // the test split stays real
    const scarce = await trainClassifier({ ...base, out: join(dir, 'mix-scarce'), augmentWith: join(dir, 'cond'), syntheticRatio: 2, syntheticSampling: 'balanced', limitPerClass: 3 });
    const metaScarce = readModelMetadata(join(dir, 'mix-scarce'));
    expect(metaScarce.training?.limitPerClass).toBe(3);
    expect(metaScarce.training?.synthetic?.perClass.crack).toBe(6);
    expect(scarce.validation).toBeNull(); // no validation split: the last epoch is the model
    expect(scarce.bestEpoch).toBe(2);
    expect(scarce.history.every((h) => Number.isFinite(h.trainLoss))).toBe(true);
    await expect(trainClassifier({ ...base, out: join(dir, 'mix-bad'), augmentWith: join(dir, 'nope') })).rejects.toThrow(/model directory not found/);
  });

  it('wgsl-nn gan train --conditional-bn: the model records it, gan sample reads it, --resume without it is refused, --class with it is a clear error', async () => {
    const out = join(dir, 'cli-cbn');
    const common = ['gan', 'train', '--data', data, '--out', out, '--size', '16', '--ngf', '4', '--ndf', '4', '--latent-dim', '8', '--batch-size', '8', '--quiet'];
    const trained = await runCli([...common, '--epochs', '1', '--conditional-bn']);
    expect(trained.code, trained.stderr).toBe(0);
    expect(readGanMetadata(out).architecture.conditionalBatchNorm).toBe(true);
    const sampled = await runCli(['gan', 'sample', '--model', out, '--count', '1', '--out', join(dir, 'cli-cbn-samples')]);
    expect(sampled.code, sampled.stderr).toBe(0);
    expect(readdirSync(join(dir, 'cli-cbn-samples')).sort()).toEqual(['clean', 'crack', 'inclusion', 'patch', 'scratch', 'spot']);
    const resumed = await runCli([...common, '--epochs', '2', '--resume']);
    expect(resumed.code).not.toBe(0);
    expect(resumed.stderr).toMatch(/conditionalBatchNorm/);
    await expect(trainGan(tiny(join(dir, 'cbn-one-class'), { className: 'crack', conditionalBatchNorm: true }))).rejects.toThrow(/conditional BatchNorm needs a class-conditional DCGAN/);
  });

  it('wgsl-nn gan train --aux-classifier: the discriminator saves its class head (spectral norm included) and reloads it, --resume continues, a class weight without the head is refused', async () => {
    const out = join(dir, 'cli-acgan');
    const common = ['gan', 'train', '--data', data, '--out', out, '--size', '16', '--ngf', '4', '--ndf', '4', '--latent-dim', '8', '--batch-size', '8', '--spectral-norm', '--aux-classifier', '--class-weight', '0.5', '--quiet'];
    const trained = await runCli([...common, '--epochs', '1']);
    expect(trained.code, trained.stderr).toBe(0);
    expect(readGanMetadata(out).architecture.auxiliaryClassifier).toBe(true);
    const state = readSafetensors(join(out, 'discriminator.safetensors')).tensors;
    expect(state['classifier.weight_orig']?.shape).toEqual([6, 8]); // 6 classes, ndf * 2 pooled features at 16 px
    expect(state['classifier.bias']?.shape).toEqual([6]);
    const loaded = loadGanDir(out, engine, { discriminator: true });
    expect(loaded.discriminator?.classifier).not.toBeNull();
    loaded.generator.dispose();
    loaded.discriminator?.dispose();
    const resumed = await runCli([...common, '--epochs', '2', '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'history.json'), 'utf8')).history).toHaveLength(2);
    const noHead = await runCli(['gan', 'train', '--data', data, '--out', join(dir, 'cli-acgan-bad'), '--size', '16', '--ngf', '4', '--ndf', '4', '--epochs', '1', '--class-weight', '1', '--quiet']);
    expect(noHead.code).not.toBe(0);
    expect(noHead.stderr).toMatch(/class loss weight needs a discriminator with an auxiliary classifier/);
  });

  it('bad input gets a clear error', async () => {
    expect(() => loadGanDir(join(dir, 'nope'), engine)).toThrow(/model directory not found/);
    expect(() => readGanMetadata(data)).toThrow(ModelFormatError);
    expect(() => readGanMetadata('models/neu')).toThrow(/'wgsl-nn-classifier\/1' model directory; expected format wgsl-nn-gan\/1/);
    await expect(trainGan(tiny(join(dir, 'bad1'), { className: 'dent' }))).rejects.toThrow(/no class 'dent'.*classes: clean, crack/);
    const empty = join(dir, 'empty');
    mkdirSync(empty, { recursive: true });
    await expect(trainGan(tiny(join(dir, 'bad2'), { data: empty }))).rejects.toThrow(/empty|no class|no image/i);
    await expect(trainGan(tiny(join(dir, 'bad3'), { imageSize: 24 }))).rejects.toThrow(/4 \* 2\^k/);
  });
});
