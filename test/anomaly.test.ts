// The anomaly detector end to end on tiny synthetic data: good surfaces from src/data/synthetic.ts and
// defects drawn on the same kind of surface with known masks. One short training (16 px patches, widths
// 8, a few epochs: seconds on lavapipe) is shared by the tests below.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recalibrateModelDir } from '../src/anomaly/calibrate.js';
import { evaluateOnSyntheticDefects } from '../src/anomaly/proxy.js';
import { SYNTHETIC_DEFECT_KINDS, withSyntheticDefect } from '../src/anomaly/synthetic-defects.js';
import { AnomalyDetector } from '../src/anomaly/detector.js';
import { evaluateAnomalyDetector } from '../src/anomaly/evaluate.js';
import { disposeNetworks, loadAnomalyDir, readAnomalyMetadata } from '../src/anomaly/model-dir.js';
import { workImageFrom } from '../src/anomaly/patches.js';
import { rawAnomalyMap, residualMaps, scoringTerms } from '../src/anomaly/scorer.js';
import { defaultScoringCandidates, scoringSettings } from '../src/anomaly/calibrate.js';
import type { MemoryOptions } from '../src/anomaly/feature-memory.js';
import { trainAnomalyDetector, type AnomalyTrainOptions, type AnomalyTrainResult } from '../src/anomaly/train.js';
import { DatasetError } from '../src/data/dataset.js';
import { ImageDecodeError, loadGray8, writeGrayPng } from '../src/data/images.js';
import { syntheticSample } from '../src/data/synthetic.js';
import type { Engine } from '../src/gpu/engine.js';
import { roundToHalf } from '../src/nn/half.js';
import { readSafetensors } from '../src/nn/serialize.js';
import { Rng } from '../src/util/rng.js';
import { runCli, testEngine } from './helpers.js';

const SIZE = 40;
let engine: Engine;
let dir: string;
let data: string; // good/ + spot/ (the evaluation set)
let masks: string;
let trainRoot: string; // the same good images, the defects, and a folder with an unreadable file
let model: string;
let trained: AnomalyTrainResult;
const spotMasks = new Map<string, Uint8Array>();

/** A clean synthetic surface with 1-2 dark round pits; returns the image and its mask (255 inside). */
function spotted(rng: Rng): { img: Float32Array; mask: Uint8Array } {
  const img = syntheticSample('clean', SIZE, rng);
  const mask = new Uint8Array(SIZE * SIZE);
  const n = 1 + rng.int(2);
  for (let k = 0; k < n; k++) {
    const r = rng.uniform(3, 4.5);
    const cx = rng.uniform(8, SIZE - 8);
    const cy = rng.uniform(8, SIZE - 8);
    for (let y = 0; y < SIZE; y++)
      for (let x = 0; x < SIZE; x++) {
        const d = Math.hypot(x + 0.5 - cx, y + 0.5 - cy);
        if (d < r) {
          img[y * SIZE + x] = Math.max(0, img[y * SIZE + x] - 0.3);
          mask[y * SIZE + x] = 255;
        }
      }
  }
  return { img, mask };
}

const tiny = (out: string, extra: Partial<AnomalyTrainOptions> = {}): AnomalyTrainOptions => ({
  data: trainRoot,
  out,
  config: { patchSize: 16, scale: 1, stride: 8, latentDim: 16, ngf: 8, ndf: 8, nef: 8 },
  ganEpochs: 3,
  encoderEpochs: 3,
  patchesPerImage: 16,
  batchSize: 32,
  sigma: 1,
  topK: 4,
  engine,
  ...extra,
});

beforeAll(async () => {
  engine = await testEngine();
  dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-anomaly-'));
  data = join(dir, 'data');
  masks = join(dir, 'masks');
  trainRoot = join(dir, 'train');
  for (const d of [join(data, 'good'), join(data, 'spot'), join(masks, 'spot')]) mkdirSync(d, { recursive: true });
  const rng = new Rng(7);
  for (let i = 0; i < 20; i++) await writeGrayPng(join(data, 'good', `g${i}.png`), syntheticSample('clean', SIZE, rng), SIZE, SIZE);
  for (let i = 0; i < 8; i++) {
    const { img, mask } = spotted(rng);
    await writeGrayPng(join(data, 'spot', `s${i}.png`), img, SIZE, SIZE);
    await writeGrayPng(join(masks, 'spot', `s${i}.png`), Float32Array.from(mask, (m) => m / 255), SIZE, SIZE);
    spotMasks.set(join(data, 'spot', `s${i}.png`), mask);
  }
  cpSync(data, trainRoot, { recursive: true });
  mkdirSync(join(trainRoot, 'junk'));
  writeFileSync(join(trainRoot, 'junk', 'broken.png'), 'not a png');
  model = join(dir, 'model');
  trained = await trainAnomalyDetector(tiny(model));
}, 600_000);

afterAll(() => {
  engine?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('anomaly train', () => {
  it('trains on the good folder only and writes the model, grids and a threshold from the validation good images', () => {
    // 20 good images: test round(4) = 4, validation round(16 * 0.2) = 3, train 13; spot/ and junk/ (unreadable) are never read.
    expect(trained.counts).toEqual({ train: 13, val: 3, test: 4 });
    expect(trained.history.map((h) => `${h.phase}${h.epoch}`)).toEqual(['gan1', 'gan2', 'gan3', 'encoder1', 'encoder2', 'encoder3']);
    for (const h of trained.history) expect(Number.isFinite(h.phase === 'gan' ? h.lossD! + h.lossG! : h.loss! + h.valLoss!)).toBe(true);
    for (const f of ['generator', 'discriminator', 'encoder']) expect(Object.keys(readSafetensors(join(model, `${f}.safetensors`)).tensors).length).toBeGreaterThan(0);
    for (const f of ['gan-epoch-0003.png', 'encoder-epoch-0003.png']) expect(existsSync(join(model, 'samples', f))).toBe(true);
    const meta = readAnomalyMetadata(model);
    expect(meta.format).toBe('wgsl-nn-anomaly/1');
    expect(meta.threshold.value).toBe(trained.threshold);
    expect(meta.threshold.falseAlarmRate).toBe(0.05);
    expect(meta.data!.files.train.every((f) => f.startsWith('good/'))).toBe(true);
    // The threshold lets at most 5 % of the validation scores above it: with 3 images, none.
    expect(Math.max(...trained.validationScores)).toBe(trained.threshold);
    expect(meta.scoring.pixelMean).toBeGreaterThan(0);
    expect(meta.scoring.featureMean).toBeGreaterThan(0);
  });

  it('a dataset without a good/free/ok/normal folder is a clear error', async () => {
    const root = join(dir, 'nogood');
    mkdirSync(join(root, 'crack'), { recursive: true });
    await writeGrayPng(join(root, 'crack', 'c.png'), syntheticSample('crack', SIZE, new Rng(1)), SIZE, SIZE);
    const err = await trainAnomalyDetector(tiny(join(dir, 'nogood-model'), { data: root })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as Error).message).toMatch(/no good images to train on in .*nogood.*good, free, ok, normal.*found folders: crack/);
  });
});

describe('anomaly scores and maps', () => {
  it('defect images score higher than good ones on average, and the decision follows the threshold', async () => {
    const r = await evaluateAnomalyDetector(model, data, { engine });
    const mean = (good: boolean) => r.images.filter((i) => i.good === good).reduce((a, i) => a + i.score, 0) / r.images.filter((i) => i.good === good).length;
    console.log(`synthetic: AUROC ${r.auroc?.toFixed(3)}, mean score good ${mean(true).toFixed(3)}, defect ${mean(false).toFixed(3)}`);
    expect(mean(false)).toBeGreaterThan(mean(true));
    for (const i of r.images) expect(i.isDefect).toBe(i.score > r.threshold);
  });

  it('the anomaly map has the image size and is larger inside the defect than outside', async () => {
    const det = await AnomalyDetector.load(model, { engine });
    try {
      const ratios: number[] = [];
      for (const [path, mask] of spotMasks) {
        const r = await det.score(readFileSync(path));
        expect(r.map!.width).toBe(SIZE);
        expect(r.map!.height).toBe(SIZE);
        let inside = 0, nIn = 0, outside = 0, nOut = 0;
        r.map!.data.forEach((v, i) => (mask[i] ? ((inside += v), nIn++) : ((outside += v), nOut++)));
        ratios.push(inside / nIn / (outside / nOut));
      }
      console.log(`map inside / outside the defect: ${ratios.map((x) => x.toFixed(2)).join(' ')}`);
      expect(ratios.filter((x) => x > 1).length).toBeGreaterThanOrEqual(6);
      expect(ratios.reduce((a, b) => a + b, 0) / ratios.length).toBeGreaterThan(1.2);
      expect((await det.score(join(data, 'good', 'g0.png'), { map: false })).map).toBeUndefined();
    } finally {
      det.dispose();
    }
  });
});

describe('anomaly eval', () => {
  it('reports AUROC, count, threshold, recalls, per-class shares and pixel AUROC with masks; heatmaps have the image size', async () => {
    const heat = join(dir, 'heat');
    const r = await evaluateAnomalyDetector(model, data, { engine, masks, heatmapDir: heat, split: 'test' });
    // split 'test': the 16 good images of training and validation are left out; 4 good + 8 spot remain.
    expect(r.excluded).toBe(16);
    expect(r.count).toBe(12);
    expect(r.goodCount).toBe(4);
    expect(r.defectCount).toBe(8);
    expect(r.auroc).toBeGreaterThanOrEqual(0);
    expect(r.auroc).toBeLessThanOrEqual(1);
    expect(r.threshold).toBe(trained.threshold);
    expect(r.goodRecall! * 4).toBe(r.images.filter((i) => i.good && !i.isDefect).length);
    expect(r.defectRecall! * 8).toBeCloseTo(r.images.filter((i) => !i.good && i.isDefect).length, 9);
    expect(r.perClass.spot.count).toBe(8);
    expect(r.perClass.spot.flaggedShare).toBe(r.defectRecall);
    expect(r.pixelAuroc).toBeGreaterThan(0.5);
    console.log(`synthetic test split: AUROC ${r.auroc?.toFixed(3)}, pixel AUROC ${r.pixelAuroc?.toFixed(3)}`);
    const png = await sharp(join(heat, 'spot', 's0.png')).metadata();
    expect([png.width, png.height, png.channels]).toEqual([SIZE, SIZE, 3]);
  });

  it('a missing mask and an unreadable image are clear errors naming the file; --on-bad-image skip leaves the image out', async () => {
    const bad = join(dir, 'bad');
    cpSync(data, bad, { recursive: true });
    writeFileSync(join(bad, 'spot', 'zz-broken.png'), 'not a png');
    const err = await evaluateAnomalyDetector(model, bad, { engine }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageDecodeError);
    expect((err as Error).message).toContain(join(bad, 'spot', 'zz-broken.png'));
    const skipped = await evaluateAnomalyDetector(model, bad, { engine, onBadImage: 'skip' });
    expect(skipped.skipped.map((s) => s.path)).toEqual([join(bad, 'spot', 'zz-broken.png')]);
    expect(skipped.count).toBe(28);
    const noMask = await evaluateAnomalyDetector(model, bad, { engine, masks, onBadImage: 'skip' }).catch((e: unknown) => e);
    expect(noMask).toBeInstanceOf(DatasetError);
    expect((noMask as Error).message).toMatch(/no mask for .*zz-broken\.png/);
  });

  it('the CLI prints one JSON object with the fields, and names a bad image', async () => {
    const { code, stdout, stderr } = await runCli(['anomaly', 'eval', '--model', model, '--data', data, '--masks', masks, '--json']);
    expect(code, stderr).toBe(0);
    const j = JSON.parse(stdout.trim());
    for (const k of ['auroc', 'count', 'threshold', 'goodRecall', 'defectRecall', 'pixelAuroc', 'perClass']) expect(j).toHaveProperty(k);
    expect(j.count).toBe(28);
    const bad = join(dir, 'bad-cli');
    cpSync(data, bad, { recursive: true });
    writeFileSync(join(bad, 'good', 'broken.png'), '');
    const failed = await runCli(['anomaly', 'eval', '--model', model, '--data', bad]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/error: empty file \(0 bytes\): .*broken\.png \(pass --on-bad-image skip/);
  });
});

describe('anomaly calibrate', () => {
  it('chooses the scoring among candidates on synthetic defects drawn on the validation images, and rewrites model.json only', async () => {
    const copy = join(dir, 'recal');
    cpSync(model, copy, { recursive: true });
    const weights = readFileSync(join(copy, 'encoder.safetensors'));
    const candidates = [
      { sigma: 1, topK: 4, featureWeight: 1, mirror: false },
      { sigma: 0, topK: 1, featureWeight: 0, mirror: true },
    ];
    const cal = await recalibrateModelDir(copy, { engine, candidates, falseAlarmRate: 0.4 });
    expect(cal.selection!.map((c) => [c.sigma, c.topK, c.featureWeight, c.mirror])).toEqual(candidates.map((c) => [c.sigma, c.topK, c.featureWeight, c.mirror]));
    for (const c of cal.selection!) {
      for (const k of ['spot', 'line', 'region'] as const) expect(c.auroc[k]).toBeGreaterThanOrEqual(0);
      expect(c.auroc.mean).toBeCloseTo((c.auroc.spot + c.auroc.line + c.auroc.region) / 3, 12);
    }
    const best = cal.selection!.reduce((a, b) => (b.auroc.mean > a.auroc.mean ? b : a));
    expect(cal.scoring.sigma).toBe(best.sigma);
    const meta = readAnomalyMetadata(copy);
    expect(meta.scoring).toEqual(cal.scoring);
    expect(meta.scoring.mirror).toBe(best.mirror);
    // The edge profile: one normal level per distance to the edge (0 .. 32 px), all positive.
    expect(meta.scoring.edgeScale).toHaveLength(33);
    expect(meta.scoring.edgeScale!.every((v) => v > 0)).toBe(true);
    // Scoring through the detector reproduces the calibration's validation scores (mirror averaging included).
    const det = await AnomalyDetector.load(copy, { engine });
    try {
      const val = meta.data!.files.val.map((f) => join(trainRoot, f));
      const got = (await det.scoreBatch(val, { map: false })).map((r) => r.score);
      got.forEach((g, i) => expect(g).toBeCloseTo(cal.validationScores[i], 4));
    } finally {
      det.dispose();
    }
    // 3 validation scores at 40 % false alarms: ceil(3 * 0.6) = 2nd smallest.
    expect(meta.threshold).toEqual({ value: [...cal.validationScores].sort((a, b) => a - b)[1], falseAlarmRate: 0.4, validationImages: 3 });
    expect(readFileSync(join(copy, 'encoder.safetensors')).equals(weights)).toBe(true);
  });
});

describe('anomaly proxy (synthetic defects, scored as the model stands)', () => {
  /** A copy of the trained model calibrated between two candidates (on `defects`), and the chosen candidate's row. */
  const calibratedCopy = async (name: string, defects?: { contrast: number; draws: number }) => {
    const copy = join(dir, name);
    cpSync(model, copy, { recursive: true });
    const candidates = [
      { sigma: 1, topK: 4, featureWeight: 1, mirror: false },
      { sigma: 2, topK: 1, featureWeight: 0, mirror: false },
    ];
    const cal = await recalibrateModelDir(copy, { engine, candidates, falseAlarmRate: 0.4, defects });
    return { copy, cal, best: cal.selection!.reduce((a, b) => (b.auroc.mean > a.auroc.mean ? b : a)) };
  };

  it("a fainter defect is the same defect: same pixels touched, each change scaled by the contrast (to the pixel's rounding)", () => {
    const rng = new Rng(11);
    const img = { width: 120, height: 90, data: Uint8Array.from({ length: 120 * 90 }, () => 100 + rng.int(57)) };
    for (const kind of SYNTHETIC_DEFECT_KINDS) {
      const full = withSyntheticDefect(img, kind, new Rng(5));
      const faint = withSyntheticDefect(img, kind, new Rng(5), 0.5);
      let changed = 0;
      for (let i = 0; i < img.data.length; i++) {
        const d1 = full.data[i] - img.data[i];
        const d2 = faint.data[i] - img.data[i];
        // Each is the exact change rounded to an integer: |d2 - d1/2| <= 0.5 + 0.5/2.
        expect(Math.abs(d2 - d1 / 2)).toBeLessThanOrEqual(0.75);
        if (Math.abs(d1) >= 4) changed++;
      }
      expect(changed).toBeGreaterThan(20);
    }
  });

  it("with calibration's defects it reproduces calibration's ROC-AUC of the chosen scoring; more draws keep the first; refusals", async () => {
    const { copy, best } = await calibratedCopy('proxy');
    const before = readFileSync(join(copy, 'model.json'));
    const one = await evaluateOnSyntheticDefects(copy, { engine });
    expect(one).toMatchObject({ contrast: 1, draws: 1, seed: 1, images: 3 });
    // The same images, defects and scoring as calibration (a ROC-AUC over 3 x 3 pairs moves in steps of 1/9).
    for (const k of [...SYNTHETIC_DEFECT_KINDS, 'mean'] as const) expect(one.auroc[k]).toBeCloseTo(best.auroc[k], 9);
    const three = await evaluateOnSyntheticDefects(copy, { engine, draws: 3, contrast: 0.5 });
    expect(three.perDraw).toHaveLength(3);
    const firstAtHalf = await evaluateOnSyntheticDefects(copy, { engine, contrast: 0.5 });
    expect(three.perDraw[0]).toEqual(firstAtHalf.perDraw[0]);
    expect(three.auroc.mean).toBeCloseTo(three.perDraw.reduce((a, r) => a + r.mean, 0) / 3, 12);
    for (const k of SYNTHETIC_DEFECT_KINDS) expect(three.auroc[k]).toBeCloseTo(three.perDraw.reduce((a, r) => a + r[k], 0) / 3, 12);
    // Nothing is written.
    expect(readFileSync(join(copy, 'model.json')).equals(before)).toBe(true);
    await expect(evaluateOnSyntheticDefects(copy, { engine, contrast: 0 })).rejects.toThrow(/contrast must be a positive number, got 0/);
    await expect(evaluateOnSyntheticDefects(copy, { engine, draws: 0 })).rejects.toThrow(/draws must be a positive integer, got 0/);
    const cli = await runCli(['anomaly', 'proxy', '--model', copy, '--defect-contrast', '0.5', '--json']);
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.stdout)).toEqual({ ...firstAtHalf, model: copy });
  });

  it('calibration (anomaly calibrate and train) can choose on fainter defects and several draws: its table is the proxy of each candidate, model.json says on which defects; a bad value fails before training', async () => {
    const { copy, cal, best } = await calibratedCopy('proxy-calibrated', { contrast: 0.5, draws: 2 });
    expect(cal.selectionDefects).toEqual({ contrast: 0.5, draws: 2 });
    expect(readAnomalyMetadata(copy).training!.scoringSelectionDefects).toEqual({ contrast: 0.5, draws: 2 });
    const proxy = await evaluateOnSyntheticDefects(copy, { engine, contrast: 0.5, draws: 2 });
    for (const k of [...SYNTHETIC_DEFECT_KINDS, 'mean'] as const) expect(proxy.auroc[k]).toBeCloseTo(best.auroc[k], 9);
    // anomaly train's own calibration takes them too; a bad value is refused before any training.
    const out = join(dir, 'trained-faint');
    const two = [
      { sigma: 1, topK: 4, featureWeight: 1 },
      { sigma: 2, topK: 1, featureWeight: 0 },
    ];
    const r = await trainAnomalyDetector(tiny(out, { ganEpochs: 1, encoderEpochs: 1, sigma: undefined, topK: undefined, scoringCandidates: two, defects: { contrast: 0.5, draws: 2 } }));
    expect(r.selection).toHaveLength(2);
    expect(readAnomalyMetadata(out).training!.scoringSelectionDefects).toEqual({ contrast: 0.5, draws: 2 });
    const never = join(dir, 'trained-bad-contrast');
    await expect(trainAnomalyDetector(tiny(never, { defects: { contrast: -1 } }))).rejects.toThrow(/contrast must be a positive number, got -1/);
    expect(existsSync(join(never, 'checkpoint'))).toBe(false);
    const refused = await runCli(['anomaly', 'calibrate', '--model', copy, '--keep-scoring', '--defect-draws', '2']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/--defect-contrast and --defect-draws choose among scoring candidates: not with --keep-scoring/);
  });
});

describe('anomaly calibrate --backbone (feature memory)', () => {
  it('adds a memory from training images kept apart from the edge profile; its map is larger inside defects; the model reloads and scores the same', async () => {
    const copy = join(dir, 'memory');
    cpSync(model, copy, { recursive: true });
    // The memory alone (pixel and feature weights 0), so this checks the memory term by itself.
    const candidates = [1, 2].map((sigma) => ({ sigma, topK: 4, pixelWeight: 0, featureWeight: 0, memoryWeight: 1, mirror: false }));
    const cal = await recalibrateModelDir(copy, { engine, candidates, falseAlarmRate: 0.4, memories: [{ backbone: 'models/neu', size: 512 }] });
    const meta = readAnomalyMetadata(copy);
    expect(meta.memories).toHaveLength(1);
    const [memory] = meta.memories!;
    expect(memory).toMatchObject({ backbone: 'models/neu', channels: [32, 64], size: 512, neighbourhood: 3 });
    const train = meta.data!.files.train;
    expect(memory.images.length).toBeGreaterThan(0);
    expect(memory.images.every((f) => train.includes(f))).toBe(true);
    expect(memory.images.length).toBeLessThan(train.length); // the rest fit the edge profile
    expect(meta.scoring.memoryWeight).toBe(1);
    expect(meta.scoring.memoryMeans).toHaveLength(1);
    expect(meta.scoring.memoryMeans![0]).toBeGreaterThan(0);
    expect(existsSync(join(copy, 'memory.safetensors'))).toBe(true);
    const det = await AnomalyDetector.load(copy, { engine });
    try {
      const val = meta.data!.files.val.map((f) => join(trainRoot, f));
      const got = (await det.scoreBatch(val, { map: false })).map((r) => r.score);
      got.forEach((g, i) => expect(g).toBeCloseTo(cal.validationScores[i], 4));
      const ratios: number[] = [];
      const defect: number[] = [];
      for (const [path, mask] of spotMasks) {
        const r = await det.score(path);
        defect.push(r.score);
        let inside = 0, nIn = 0, outside = 0, nOut = 0;
        r.map!.data.forEach((v, i) => (mask[i] ? ((inside += v), nIn++) : ((outside += v), nOut++)));
        ratios.push(inside / nIn / (outside / nOut));
      }
      const good = (await det.scoreBatch(readdirSync(join(data, 'good')).slice(0, 8).map((f) => join(data, 'good', f)), { map: false })).map((r) => r.score);
      const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
      console.log(`memory map inside / outside: ${ratios.map((x) => x.toFixed(2)).join(' ')}; mean score good ${mean(good).toFixed(3)}, defect ${mean(defect).toFixed(3)}`);
      expect(ratios.filter((x) => x > 1).length).toBeGreaterThanOrEqual(6);
      expect(mean(defect)).toBeGreaterThan(mean(good));
    } finally {
      det.dispose();
    }
  });

  /** A copy of the trained model recalibrated with a feature memory built from `memory`, scored by the memory term alone. */
  async function withMemoryOnly(name: string, ...memories: MemoryOptions[]) {
    const copy = join(dir, name);
    cpSync(model, copy, { recursive: true });
    const candidates = [{ sigma: 1, topK: 4, pixelWeight: 0, featureWeight: 0, memoryWeight: 1, mirror: false }];
    const cal = await recalibrateModelDir(copy, { engine, candidates, falseAlarmRate: 0.4, memories });
    return { copy, cal, meta: readAnomalyMetadata(copy) };
  }

  /** The model directory, loaded by AnomalyDetector, scores its first validation images as calibration did. */
  async function expectReloadedScores(modelDir: string, validationScores: number[]): Promise<void> {
    const det = await AnomalyDetector.load(modelDir, { engine });
    try {
      const val = readAnomalyMetadata(modelDir).data!.files.val.slice(0, 3).map((f) => join(trainRoot, f));
      const got = (await det.scoreBatch(val, { map: false })).map((r) => r.score);
      got.forEach((g, i) => expect(g).toBeCloseTo(validationScores[i], 4));
    } finally {
      det.dispose();
    }
  }

  it('a coreset memory (--memory-sampling coreset) records how it was chosen and scores with it', async () => {
    const { copy, cal, meta } = await withMemoryOnly('memory-coreset', { backbone: 'models/neu', size: 256, sampling: 'coreset', pool: 2048 });
    expect(meta.memories![0]).toMatchObject({ size: 256, sampling: 'coreset', pool: 2048 });
    const bank = readSafetensors(join(copy, 'memory.safetensors')).tensors.bank;
    expect(bank.shape).toEqual([256, 64]);
    const rows = new Set(Array.from({ length: 256 }, (_, i) => Array.from((bank.data as Float32Array).subarray(i * 64, i * 64 + 64)).join()));
    expect(rows.size).toBe(256); // distinct picks
    await expectReloadedScores(copy, cal.validationScores);
  });

  it('a memory of three backbone blocks (--memory-layers 3) holds 64 + 128 features, records them and scores the same after reloading', async () => {
    const { copy, cal, meta } = await withMemoryOnly('memory-deep', { backbone: 'models/neu', size: 128, layers: 3 });
    expect(meta.memories![0].channels).toEqual([32, 64, 128]);
    const saved = readSafetensors(join(copy, 'memory.safetensors')).tensors;
    expect(saved.bank.shape).toEqual([128, 192]);
    expect(saved['deep.1.weight'].shape).toEqual([128, 64, 3, 3]);
    await expectReloadedScores(copy, cal.validationScores);
  });

  it("a memory of the third block alone (--memory-layers deep) holds its 128 features, records deepOnly and scores the same after reloading", async () => {
    const { copy, cal, meta } = await withMemoryOnly('memory-deep-only', { backbone: 'models/neu', size: 96, layers: 'deep' });
    expect(meta.memories![0]).toMatchObject({ channels: [32, 64, 128], deepOnly: true });
    const saved = readSafetensors(join(copy, 'memory.safetensors')).tensors;
    expect(saved.bank.shape).toEqual([96, 128]);
    expect(saved['deep.1.weight'].shape).toEqual([128, 64, 3, 3]);
    expect(cal.validationScores.every((v) => Number.isFinite(v) && v > 0)).toBe(true);
    await expectReloadedScores(copy, cal.validationScores);
  });

  it('a memory the chosen mix weighs 0 is not kept: its file goes, the record names it, and the scores are those calibration computed', async () => {
    const copy = join(dir, 'memory-dropped');
    cpSync(model, copy, { recursive: true });
    const candidates = [{ sigma: 1, topK: 4, pixelWeight: 0, featureWeight: 0, memoryWeight: 1, memoryMix: [2, 0, 1], mirror: false }];
    const memories: MemoryOptions[] = [{ backbone: 'models/neu', size: 64 }, { backbone: 'models/neu', size: 32, layers: 'deep' }, { backbone: 'models/neu', size: 48, layers: 3 }];
    const cal = await recalibrateModelDir(copy, { engine, candidates, falseAlarmRate: 0.4, memories });
    expect(cal.droppedMemories).toEqual([1]);
    const meta = readAnomalyMetadata(copy);
    expect(meta.memories!.map((m) => m.size)).toEqual([64, 48]);
    expect(meta.scoring.memoryMix).toEqual([2, 1]);
    expect(meta.scoring.memoryMeans).toHaveLength(2);
    expect(meta.recalibration!.droppedMemories).toEqual([expect.objectContaining({ index: 1, size: 32, deepOnly: true, backbone: 'models/neu' })]);
    expect(readSafetensors(join(copy, 'memory-2.safetensors')).tensors.bank.shape).toEqual([48, 192]); // the third memory moved up
    expect(existsSync(join(copy, 'memory-3.safetensors'))).toBe(false);
    await expectReloadedScores(copy, cal.validationScores);
    // A mix leaving one memory: the scoring has no mix any more.
    const one = await recalibrateModelDir(copy, { engine, candidates: [{ ...candidates[0], memoryMix: [0, 1] }], falseAlarmRate: 0.4 });
    expect(one.droppedMemories).toEqual([0]);
    const m1 = readAnomalyMetadata(copy);
    expect(m1.memories!.map((m) => m.size)).toEqual([48]);
    expect(m1.scoring.memoryMix).toBeUndefined();
    expect(existsSync(join(copy, 'memory-2.safetensors'))).toBe(false);
    await expectReloadedScores(copy, one.validationScores);
  });

  it('--memory-mixes replaces the memory-alone mixes of the default candidates; a mix of another length is refused', () => {
    const mixes = (c: ReturnType<typeof defaultScoringCandidates>) => [...new Set(c.filter((x) => x.memoryMix).map((x) => x.memoryMix!.join(':')))];
    expect(mixes(defaultScoringCandidates(3, [[3, 1, 0], [3, 1, 2]]))).toEqual(['3:1:0', '3:1:2']);
    // Each mix gets the memory-alone grid (mirror x sigma x top-k: 18), beside the GAN-term candidates mixed equally.
    const three = defaultScoringCandidates(3, [[3, 1, 0], [3, 1, 2]]);
    expect(three.filter((c) => c.memoryMix?.join(':') === '3:1:2')).toHaveLength(18);
    expect(three.filter((c) => !c.memoryMix && (c.memoryWeight ?? 0) > 0).length).toBeGreaterThan(0);
    expect(mixes(defaultScoringCandidates(3))).toEqual([]); // three memories by default: mixed equally
    expect(mixes(defaultScoringCandidates(2, [[1, 2]]))).toEqual(['1:2']);
    expect(() => defaultScoringCandidates(3, [[3, 1]])).toThrow(/one weight per memory \(3\)/);
    expect(() => defaultScoringCandidates(1, [[1]])).toThrow(/one weight per memory|two or more memories/);
  });

  it('anomaly calibrate takes per-backbone --memory-size, --memory-layers, --memory-downscale and --memory-mixes', async () => {
    const copy = join(dir, 'memory-cli-lists');
    cpSync(model, copy, { recursive: true });
    const args = ['--memory-size', '64,32', '--memory-layers', '2,deep', '--memory-downscale', '1,2', '--memory-mixes', '1:1,1:0,2:1'];
    const r = await runCli(['anomaly', 'calibrate', '--model', copy, '--backbone', 'models/neu', 'models/neu', ...args]);
    expect(r.code).toBe(0);
    const meta = readAnomalyMetadata(copy);
    const mixes = new Set(meta.training!.scoringSelection!.filter((c) => c.memoryMix).map((c) => c.memoryMix!.join(':')));
    expect([...mixes]).toEqual(['1:1', '1:0', '2:1']);
    // The first memory is as before; the second the third block alone on the image reduced 2x (unless the chosen mix dropped it).
    expect(meta.memories![0]).toMatchObject({ size: 64, channels: [32, 64] });
    if (meta.memories!.length === 2) expect(meta.memories![1]).toMatchObject({ size: 32, channels: [32, 64, 128], deepOnly: true, downscale: 2 });
    else expect(meta.recalibration!.droppedMemories).toEqual([expect.objectContaining({ index: 1, size: 32, deepOnly: true, downscale: 2 })]);
  });

  it('anomaly calibrate refuses --memory-layers and --memory-mixes that do not fit its backbones, before any work', async () => {
    const layers = await runCli(['anomaly', 'calibrate', '--model', model, '--backbone', 'models/neu', 'models/neu', '--memory-layers', '2,deep,3']);
    expect(layers.code).not.toBe(0);
    expect(layers.stderr).toMatch(/--memory-layers gives 3 values for 2 backbones/);
    const mix = await runCli(['anomaly', 'calibrate', '--model', model, '--backbone', 'models/neu', 'models/neu', '--memory-mixes', '1:1,1:2:3']);
    expect(mix.code).not.toBe(0);
    expect(mix.stderr).toMatch(/the mix 1:2:3 has 3 weights for 2 memories/);
    const word = await runCli(['anomaly', 'calibrate', '--model', model, '--backbone', 'models/neu', '--memory-layers', 'deeper']);
    expect(word.code).not.toBe(0);
    expect(word.stderr).toMatch(/--memory-layers takes 2, 3 or deep/);
    const scale = await runCli(['anomaly', 'calibrate', '--model', model, '--backbone', 'models/neu', 'models/neu', 'models/neu', '--memory-downscale', '1,2']);
    expect(scale.code).not.toBe(0);
    expect(scale.stderr).toMatch(/--memory-downscale gives 2 values for 3 backbones/);
    const size = await runCli(['anomaly', 'calibrate', '--model', model, '--backbone', 'models/neu', '--memory-size', '64,0']);
    expect(size.code).not.toBe(0);
    expect(size.stderr).toMatch(/--memory-size takes positive integers \(comma list\), got '0'/);
    const factor = await runCli(['anomaly', 'calibrate', '--model', model, '--backbone', 'models/neu', '--memory-downscale', '9']);
    expect(factor.code).not.toBe(0);
    expect(factor.stderr).toMatch(/--memory-downscale takes integers from 1 to 8 \(comma list\), got '9'/);
    const none = await runCli(['anomaly', 'calibrate', '--model', model, '--memory-mixes', '1:1']);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/--memory-mixes needs the memories it mixes/);
  });

  it('two memories (one per backbone) are saved as memory and memory-2, mixed as weighted, and score the same after reloading', async () => {
    // The second backbone: models/neu again, as a coreset, so the two memories hold different vectors.
    const { copy, cal, meta } = await withMemoryOnly('memory-two', { backbone: 'models/neu', size: 256 }, { backbone: 'models/neu', size: 128, sampling: 'coreset', pool: 1024 });
    expect(meta.memories!.map((m) => [m.size, m.sampling ?? 'random'])).toEqual([
      [256, 'random'],
      [128, 'coreset'],
    ]);
    expect(meta.memories![0].images).toEqual(meta.memories![1].images);
    expect(readSafetensors(join(copy, 'memory.safetensors')).tensors.bank.shape).toEqual([256, 64]);
    expect(readSafetensors(join(copy, 'memory-2.safetensors')).tensors.bank.shape).toEqual([128, 64]);
    expect(meta.scoring.memoryMeans).toHaveLength(2);
    await expectReloadedScores(copy, cal.validationScores);

    // The mixed term is the mix-weighted mean of each memory's map in units of its own mean.
    const { nets, config } = loadAnomalyDir(copy, engine);
    try {
      const img = await workImageFrom(await loadGray8(join(trainRoot, meta.data!.files.val[0])), config);
      const maps = (await residualMaps(nets, config, [img], 64, { gan: false, memory: true }))[0];
      const [a, b] = meta.scoring.memoryMeans!;
      const s = { ...meta.scoring, sigma: 0, edgeScale: undefined, memoryWeight: 2, memoryMix: [3, 1] };
      const mixed = rawAnomalyMap(maps, s);
      const i = Math.floor(mixed.length / 2);
      expect(mixed[i]).toBeCloseTo(2 * ((3 / 4) * (maps.memories![0][i] / a) + (1 / 4) * (maps.memories![1][i] / b)), 5);
      // A mix that leaves a memory out does not search it (its map is zeros).
      const partial = (await residualMaps(nets, config, [img], 64, scoringTerms({ ...s, memoryMix: [1, 0] })))[0];
      expect(partial.memories![0]).toEqual(maps.memories![0]);
      expect(partial.memories![1].every((v) => v === 0)).toBe(true);
      expect(() => rawAnomalyMap(maps, { ...s, memoryMix: [1] })).toThrow(/memoryMix must hold 2/);
      expect(() => rawAnomalyMap({ ...maps, memories: [maps.memories![0]] }, s)).toThrow(/1 memories and 2 calibrated memory means/);
    } finally {
      disposeNetworks(nets);
    }
    // Two memories get the mixes among the default candidates; a candidate mixing another count is refused.
    expect(defaultScoringCandidates(2).filter((c) => c.memoryMix).map((c) => c.memoryMix!.join(':'))).toEqual(expect.arrayContaining(['1:0', '0:1', '1:1', '3:1', '1:3']));
    await expect(recalibrateModelDir(copy, { engine, candidates: [{ sigma: 1, topK: 4, featureWeight: 0, pixelWeight: 0, memoryWeight: 1, memoryMix: [1, 1, 1] }] })).rejects.toThrow(/mixes 3 memories, but the model has 2/);
    // Recalibrated with one memory: the second one's file goes.
    await recalibrateModelDir(copy, { engine, candidates: [{ sigma: 1, topK: 4, featureWeight: 0, pixelWeight: 0, memoryWeight: 1 }], memories: [{ backbone: 'models/neu', size: 64 }] });
    expect(readAnomalyMetadata(copy).memories).toHaveLength(1);
    expect(existsSync(join(copy, 'memory-2.safetensors'))).toBe(false);
  });

  it('--memory-precision f16 stores the banks at half precision (new memories, or on calibrate alone the existing ones, --keep-scoring keeping the settings): half the file, the scores calibration computed', async () => {
    const { copy } = await withMemoryOnly('memory-f16', { backbone: 'models/neu', size: 256 });
    // A calibration that chose among two candidates: its table must survive --keep-scoring.
    const two = [1, 2].map((sigma) => ({ sigma, topK: 4, pixelWeight: 0, featureWeight: 0, memoryWeight: 1, mirror: false }));
    await recalibrateModelDir(copy, { engine, candidates: two, falseAlarmRate: 0.4 });
    const meta = readAnomalyMetadata(copy);
    expect(meta.training!.scoringSelection).toHaveLength(2);
    const file = join(copy, 'memory.safetensors');
    const fullBank = readSafetensors(file).tensors.bank.data as Float32Array;
    const fullBytes = statSync(file).size;
    // --keep-scoring: the settings stay, the memory's normal level moves by the rounding only.
    const cal = await recalibrateModelDir(copy, { engine, keepScoring: true, memoryPrecision: 'f16' });
    const after = readAnomalyMetadata(copy);
    expect(after.memories![0]).toMatchObject({ precision: 'f16', size: 256, images: meta.memories![0].images });
    expect(scoringSettings(after.scoring)).toEqual(scoringSettings(meta.scoring));
    expect(after.threshold.falseAlarmRate).toBe(meta.threshold.falseAlarmRate);
    expect(after.recalibration!.previous).toEqual(meta.recalibration); // the earlier calibration stays on record
    expect(after.training!.scoringSelection).toEqual(meta.training!.scoringSelection); // the table that chose the kept settings
    expect(after.scoring.memoryMeans![0]).not.toBe(meta.scoring.memoryMeans![0]);
    expect(Math.abs(after.scoring.memoryMeans![0] / meta.scoring.memoryMeans![0] - 1)).toBeLessThan(1e-2);
    expect(Math.abs(after.threshold.value / meta.threshold.value - 1)).toBeLessThan(1e-2);
    expect(statSync(file).size).toBeLessThanOrEqual(fullBytes - 256 * 64 * 2 + 8); // the bank at 2 bytes a value (header within 8)
    const halfBank = readSafetensors(file).tensors.bank.data as Float32Array;
    expect(Array.from(halfBank)).toEqual(Array.from(roundToHalf(fullBank)));
    expect(halfBank.some((v, i) => v !== fullBank[i])).toBe(true);
    await expectReloadedScores(copy, cal.validationScores);
    // Built at f16: the same draw as the float32 memory, rounded.
    const built = await withMemoryOnly('memory-f16-built', { backbone: 'models/neu', size: 256, precision: 'f16' });
    expect(built.meta.memories![0].precision).toBe('f16');
    expect(Array.from(readSafetensors(join(built.copy, 'memory.safetensors')).tensors.bank.data as Float32Array)).toEqual(Array.from(halfBank));
    // Nothing to store: clear errors, before any work.
    const none = await runCli(['anomaly', 'calibrate', '--model', model, '--memory-precision', 'f16']);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toMatch(/has no feature memories to store at f16 \(build them with --backbone\)/);
    const both = await runCli(['anomaly', 'calibrate', '--model', copy, '--keep-scoring', '--sigma', '1']);
    expect(both.code).not.toBe(0);
    expect(both.stderr).toMatch(/--keep-scoring keeps the model's settings: not with --sigma/);
    await expect(recalibrateModelDir(copy, { engine, keepScoring: true, memoryMixes: [[1, 1]] })).rejects.toThrow(/excludes choosing among candidates or memory mixes/);
    const train = await runCli(['anomaly', 'train', '--data', trainRoot, '--out', join(dir, 'never-written'), '--memory-precision', 'f16']);
    expect(train.code).not.toBe(0);
    expect(train.stderr).toMatch(/--memory-precision needs the memories it stores \(--backbone\)/);
    expect(existsSync(join(dir, 'never-written'))).toBe(false);
  });

  it('--keep-memories appends new memories to the kept ones: the same set as building all at once, the kept file untouched', async () => {
    const first: MemoryOptions = { backbone: 'models/neu', size: 128 };
    const second: MemoryOptions = { backbone: 'models/neu', size: 64, layers: 'deep' };
    const { copy } = await withMemoryOnly('memory-keep', first);
    const keptBytes = readFileSync(join(copy, 'memory.safetensors'));
    const candidates = [{ sigma: 1, topK: 4, pixelWeight: 0, featureWeight: 0, memoryWeight: 1, memoryMix: [1, 1], mirror: false }];
    const cal = await recalibrateModelDir(copy, { engine, candidates, falseAlarmRate: 0.4, memories: [second], keepMemories: true });
    expect(readFileSync(join(copy, 'memory.safetensors')).equals(keptBytes)).toBe(true);
    const together = await withMemoryOnly('memory-together', first, second);
    const meta = readAnomalyMetadata(copy);
    expect(meta.memories).toEqual(together.meta.memories);
    for (const f of ['memory.safetensors', 'memory-2.safetensors'])
      expect(Array.from(readSafetensors(join(copy, f)).tensors.bank.data as Float32Array)).toEqual(Array.from(readSafetensors(join(together.copy, f)).tensors.bank.data as Float32Array));
    await expectReloadedScores(copy, cal.validationScores);
    await expect(recalibrateModelDir(copy, { engine, keepMemories: true })).rejects.toThrow(/keeping the memories applies when new ones are built/);
  });

  it('an AnomalyDetector scoring images of several sizes, two at a time, keeps GPU memory flat and its scores; a bad image fails its own call only', async () => {
    // Every scoring path at once: GAN residuals, two memories, mirror averaging.
    const copy = join(dir, 'memory-soak');
    cpSync(model, copy, { recursive: true });
    const candidates = [{ sigma: 1, topK: 4, pixelWeight: 1, featureWeight: 1, memoryWeight: 1, mirror: true }];
    await recalibrateModelDir(copy, { engine, candidates, falseAlarmRate: 0.4, memories: [{ backbone: 'models/neu', size: 128 }, { backbone: 'models/neu', size: 64, sampling: 'coreset', pool: 512 }] });
    const sizes: [number, number][] = [[SIZE, SIZE], [48, 40], [40, 56], [33, 47], [61, 29]];
    const images = await Promise.all(sizes.map(([w, h], i) => sharp(join(data, i % 2 ? 'spot/s1.png' : 'good/g1.png')).resize(w, h, { fit: 'fill' }).png().toBuffer()));
    const det = await AnomalyDetector.load(copy, { engine });
    try {
      const first = (await det.scoreBatch(images)).map((r) => r.score);
      const bad = Buffer.from('not an image');
      const before = engine.memory();
      let warmed = before;
      for (let round = 0; round < 6; round++) {
        // The first rounds bring the buffer pool to what these calls in flight together need.
        if (round === 2) warmed = engine.memory();
        const results = await Promise.allSettled(
          [...images, bad].map((img, i) => new Promise((r) => setTimeout(r, i)).then(() => det.score(img, { map: i % 2 === 0 }))),
        );
        results.slice(0, images.length).forEach((r, i) => {
          expect(r.status).toBe('fulfilled');
          expect((r as PromiseFulfilledResult<{ score: number }>).value.score).toBeCloseTo(first[i], 5);
        });
        const failed = results[images.length];
        expect(failed.status).toBe('rejected');
        expect((failed as PromiseRejectedResult).reason).toBeInstanceOf(ImageDecodeError);
        const after = engine.memory();
        // Every call releases what it used (in use back to the level before). The pool keeps what the calls in
        // flight together needed at their peak, which depends on how they interleave: after warming up it may
        // grow by a little, never by call.
        expect(after.bytesInUse).toBe(before.bytesInUse);
        if (round >= 2) expect(after.bytesAllocated).toBeLessThanOrEqual(warmed.bytesAllocated * 1.1);
      }
    } finally {
      det.dispose();
    }
  });

  it('dispose() while calls are in flight: each call either finishes with its score or rejects with a clear error', async () => {
    const image = readFileSync(join(data, 'spot', 's1.png'));
    const expected = await (async () => {
      const det = await AnomalyDetector.load(model, { engine });
      try {
        return (await det.score(image)).score;
      } finally {
        det.dispose();
      }
    })();
    // The detector's own engine (destroyed by dispose), disposed at several moments of the calls' work.
    const outcomes = new Set<string>();
    for (const delayMs of [0, 1, 5, 20, 80]) {
      const det = await AnomalyDetector.load(model);
      const calls = [0, 1, 2].map(() => det.score(image));
      await new Promise((r) => setTimeout(r, delayMs));
      det.dispose();
      for (const r of await Promise.allSettled(calls)) {
        if (r.status === 'fulfilled') expect(r.value.score).toBeCloseTo(expected, 5);
        else expect((r.reason as Error).message, `disposed after ${delayMs} ms`).toMatch(/AnomalyDetector (used after|disposed while scoring)/);
        outcomes.add(r.status === 'fulfilled' ? 'scored' : (r.reason as Error).message);
      }
      await expect(det.score(image)).rejects.toThrow(/AnomalyDetector used after dispose\(\)/);
    }
    console.log(`outcomes: ${[...outcomes].join(' | ')}`);
    // Disposed for certain in the middle of a call's GPU work: the call has passed its checks and recorded its
    // first dispatches when dispose() runs (this used to surface as a "GPU internal error").
    const det = await AnomalyDetector.load(model);
    const work = await det.load(image);
    const inFlight = det.scoreWorkImages([work]);
    det.dispose();
    await expect(inFlight).rejects.toThrow(/AnomalyDetector disposed while scoring/);
  });

  it('a model.json written with one memory (memory, scoring.memoryMean) loads as a list of one', async () => {
    const { copy, cal, meta } = await withMemoryOnly('memory-legacy', { backbone: 'models/neu', size: 128 });
    const json = JSON.parse(readFileSync(join(copy, 'model.json'), 'utf8'));
    const { memories, ...rest } = json;
    const { memoryMeans, ...scoring } = rest.scoring;
    writeFileSync(join(copy, 'model.json'), JSON.stringify({ ...rest, memory: memories[0], scoring: { ...scoring, memoryMean: memoryMeans[0] } }));
    const legacy = readAnomalyMetadata(copy);
    expect(legacy.memories).toEqual(meta.memories);
    expect(legacy.scoring.memoryMeans).toEqual(meta.scoring.memoryMeans);
    expect(legacy).not.toHaveProperty('memory');
    await expectReloadedScores(copy, cal.validationScores);
  });

  it('anomaly train with a memory builds it after the encoder and calibrates with its term', async () => {
    const out = join(dir, 'trained-memory');
    const r = await trainAnomalyDetector(
      tiny(out, { ganEpochs: 1, encoderEpochs: 1, sigma: undefined, topK: undefined, memories: [{ backbone: 'models/neu', size: 256 }], scoringCandidates: [{ sigma: 1, topK: 4, featureWeight: 1, memoryWeight: 3 }] }),
    );
    const meta = readAnomalyMetadata(out);
    expect(meta.memories![0].size).toBe(256);
    expect(meta.memories![0].images.every((f) => meta.data!.files.train.includes(f))).toBe(true);
    expect(r.scoring.memoryWeight).toBe(3);
    expect(meta.scoring.memoryMeans![0]).toBeGreaterThan(0);
    expect(readSafetensors(join(out, 'memory.safetensors')).tensors.bank.shape).toEqual([256, 64]);
  });

  it('a backbone folder that is not a classifier is a clear error, and the model is left as it was', async () => {
    const copy = join(dir, 'memory-bad');
    cpSync(model, copy, { recursive: true });
    const before = readFileSync(join(copy, 'model.json'));
    await expect(recalibrateModelDir(copy, { engine, memories: [{ backbone: join(dir, 'nowhere') }] })).rejects.toThrow(/nowhere/);
    await expect(recalibrateModelDir(copy, { engine, memories: [{ backbone: 'models/neu', size: 64 }, { backbone: model }] })).rejects.toThrow(/wgsl-nn-classifier|classifier/);
    expect(readFileSync(join(copy, 'model.json')).equals(before)).toBe(true);
    expect(existsSync(join(copy, 'memory.safetensors'))).toBe(false);
  });
});

describe('anomaly train --resume', () => {
  it('continues an interrupted encoder stage to the same weights as an uninterrupted run', async () => {
    const straight = join(dir, 'straight');
    const resumed = join(dir, 'resumed');
    const short = { ganEpochs: 1, encoderEpochs: 2 };
    await trainAnomalyDetector(tiny(straight, short));
    await trainAnomalyDetector(tiny(resumed, { ...short, encoderEpochs: 1 }));
    const r = await trainAnomalyDetector(tiny(resumed, { ...short, resume: true }));
    expect(r.history.map((h) => `${h.phase}${h.epoch}`)).toEqual(['gan1', 'encoder1', 'encoder2']);
    const a = readSafetensors(join(straight, 'encoder.safetensors')).tensors;
    const b = readSafetensors(join(resumed, 'encoder.safetensors')).tensors;
    for (const k of Object.keys(a)) expect(Array.from(b[k].data as Float32Array)).toEqual(Array.from(a[k].data as Float32Array));
    expect(readAnomalyMetadata(resumed).threshold.value).toBe(readAnomalyMetadata(straight).threshold.value);
  });
});
