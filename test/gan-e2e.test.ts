// GAN training end to end on a tiny synthetic dataset: the trainer (shared loop, checkpoints, sample
// grids, snapshots), resume, the model directory, sampling into a dataset `wgsl-nn train` reads, and
// clear errors for bad input. Tiny sizes (16x16, widths 4, 2-3 epochs) keep it to seconds on lavapipe.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scanDataset } from '../src/data/dataset.js';
import { generateSynthetic } from '../src/data/synthetic.js';
import type { Engine } from '../src/gpu/engine.js';
import { loadGanDir, readGanMetadata } from '../src/gan/model-dir.js';
import { ModelFormatError } from '../src/model-dir.js';
import { writeSampleFolders } from '../src/gan/samples.js';
import { trainGan, type GanTrainOptions } from '../src/gan/train.js';
import { formatGanScore, scoreGan } from '../src/gan/score.js';
import { trainClassifier } from '../src/cnn/train.js';
import { readModelMetadata } from '../src/cnn/model-dir.js';
import { readSafetensors } from '../src/nn/serialize.js';
import { checkpointPartPath } from '../src/train/checkpoint.js';
import { testEngine } from './helpers.js';

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

const tiny = (out: string, extra: Partial<GanTrainOptions> = {}): GanTrainOptions => ({
  data,
  out,
  arch: 'dcgan',
  imageSize: 16,
  ngf: 4,
  ndf: 4,
  latentDim: 8,
  batchSize: 8,
  epochs: 2,
  engine,
  ...extra,
});

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
  });

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
    // The test split recorded by the GAN trainer: 2 of the 10 images per class.
    const t = await scoreGan({ model: join(dir, 'cond'), data, classifier, engine, kidSubsets: 5, testSplit: true }).catch((e: Error) => e);
    expect(t).toBeInstanceOf(Error);
    expect((t as Error).message).toMatch(/at least 8/);
    await expect(scoreGan({ model: join(dir, 'cond'), data: join(dir, 'sampled'), classifier: join(dir, 'nope'), engine })).rejects.toThrow(/model directory not found/);
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
