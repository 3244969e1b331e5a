// Training the surface-defect classifier: data loading and split, the epoch loop with validation,
// best-checkpoint keeping, atomic checkpoints with --resume, early stopping, NaN detection, and the
// final test-split evaluation with a JSON report and PNG plots.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import * as F from '../nn/functional.js';
import { manualSeed } from '../nn/seed.js';
import { noGrad, Tensor } from '../nn/tensor.js';
import { Adam } from '../nn/optim.js';
import { readSafetensors, writeFileAtomic, writeSafetensors } from '../nn/serialize.js';
import type { StateDict } from '../nn/modules.js';
import { iterateBatches, type Batch } from '../data/batch.js';
import type { ImageSource } from '../data/cache.js';
import { prepareDataset } from '../data/prepare.js';
import type { SplitResult } from '../data/split.js';
import type { AugmentOptions } from '../data/augment.js';
import { argmaxRows, computeMetrics, type MetricsReport } from './metrics.js';
import { DefectClassifier, type Task } from './model.js';
import { saveModelDir, type EpochRecord } from './model-dir.js';
import { writeConfusionPng, writeCurvesPng } from './plots.js';

export class TrainingDivergedError extends WgslNnError {}

export interface TrainOptions {
  data: string;
  task: Task;
  /** Model directory to write (best model); checkpoints go in <out>/checkpoint. */
  out: string;
  inputSize?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  /** Fraction of each class kept for the test split (default 0.2). */
  testFraction?: number;
  /** Fraction of the rest kept for validation (default 0.2, the seed's validation split). */
  valFraction?: number;
  augment?: boolean | AugmentOptions;
  /** 'constant' (the seed) or 'cosine': lr * (1 + cos(pi * (epoch - 1) / epochs)) / 2 per epoch. */
  lrSchedule?: 'constant' | 'cosine';
  /** Stop after this many epochs without a better validation result (default: never). */
  patience?: number;
  resume?: boolean;
  /** 'skip' drops unreadable images with a warning; 'fail' stops at the first (default 'fail'). */
  onBadImage?: 'skip' | 'fail';
  /** Input standardisation: by the training split's statistics (default) or per image. */
  normalize?: 'dataset' | 'image';
  /** Channel widths of the conv blocks (default the seed's 32, 64, 128). */
  channels?: [number, number, number];
  /** Resize rule for non-square images. */
  fit?: 'fill' | 'cover';
  engine?: Engine;
  /** Progress callbacks (the CLI draws a progress bar with them). */
  onEpochStart?: (epoch: number, batches: number) => void;
  onBatch?: (info: { epoch: number; batch: number; batches: number; loss: number; accuracy: number; imagesPerSecond: number }) => void;
  onEpochEnd?: (record: EpochRecord, improved: boolean) => void;
  log?: (line: string) => void;
  /** Recorded in model.json. */
  command?: string;
}

export interface TrainResult {
  modelDir: string;
  history: EpochRecord[];
  bestEpoch: number;
  test: MetricsReport | null;
  validation: MetricsReport | null;
  seconds: number;
  imagesPerSecond: number;
  stoppedEarly: boolean;
}

interface CheckpointState {
  epoch: number;
  bestEpoch: number;
  bestScore: number;
  history: EpochRecord[];
  adamStep: number;
  optionsDigest: string;
}

function digest(o: unknown): string {
  return JSON.stringify(o);
}

/** Trains, keeps the best model by validation accuracy (ties: lower loss), evaluates it on the test split. */
export async function trainClassifier(opts: TrainOptions): Promise<TrainResult> {
  const log = opts.log ?? (() => {});
  const engine = opts.engine ?? Engine.default;
  const seed = opts.seed ?? 1;
  const size = opts.inputSize ?? 64;
  const epochs = opts.epochs ?? 20;
  const batchSize = opts.batchSize ?? 32;
  const lr = opts.lr ?? 1e-3;
  const augment: AugmentOptions | null = opts.augment === false ? null : opts.augment === true || opts.augment === undefined ? {} : opts.augment;
  const started = Date.now();

  const prepared = await prepareDataset(opts.data, opts.task, {
    size,
    seed,
    test: opts.testFraction ?? 0.2,
    val: opts.valFraction ?? 0.2,
    fit: opts.fit,
    onBadImage: opts.onBadImage,
    onSkip: (_path, reason) => log(`warning: skipping ${reason}`),
  });
  const { split, labels } = prepared;
  const data = { classes: prepared.dataset.classes, items: prepared.dataset.items, cache: prepared.cache };
  log(`data: ${data.items.length} images, classes ${data.classes.join(', ')}; train ${split.train.length}, val ${split.val.length}, test ${split.test.length}`);
  if (split.train.length === 0) throw new WgslNnError('the training split is empty: the dataset is too small');

  const stats = await pixelStats(data.cache, labels, split.train);
  manualSeed(seed);
  const model = new DefectClassifier(
    { task: opts.task, classes: data.classes, inputSize: size, channels: opts.channels, inputMean: stats.mean, inputStd: stats.std, normalize: opts.normalize },
    engine,
  );
  const optimizer = new Adam(model.parameters(), { lr });
  const ckptDir = join(opts.out, 'checkpoint');
  // What must match for --resume to continue the same run (the learning rate may change).
  const optionsDigest = digest({ data: opts.data, task: opts.task, size, batchSize, seed, channels: model.config.channels, normalize: model.config.normalize });
  let state: CheckpointState = { epoch: 0, bestEpoch: 0, bestScore: -Infinity, history: [], adamStep: 0, optionsDigest };

  if (opts.resume && existsSync(join(ckptDir, 'state.json'))) {
    const saved = JSON.parse(readFileSync(join(ckptDir, 'state.json'), 'utf8')) as CheckpointState;
    if (saved.optionsDigest !== optionsDigest)
      throw new WgslNnError(`--resume: the checkpoint in ${ckptDir} was made with other options (${saved.optionsDigest})`);
    model.net.loadStateDict(readSafetensors(join(ckptDir, 'model.safetensors')).tensors);
    loadAdamState(optimizer, readSafetensors(join(ckptDir, 'optimizer.safetensors')).tensors, model);
    optimizer.stepCount = saved.adamStep;
    state = saved;
    log(`resumed from epoch ${state.epoch} (best ${state.bestEpoch})`);
  }

  let stoppedEarly = false;
  for (let epoch = state.epoch + 1; epoch <= epochs; epoch++) {
    // Each epoch reseeds from (seed, epoch), so a resumed run continues exactly as an uninterrupted one.
    manualSeed(seed * 1000003 + epoch);
    optimizer.lr = opts.lrSchedule === 'cosine' ? (lr * (1 + Math.cos((Math.PI * (epoch - 1)) / epochs))) / 2 : lr;
    const record = await runEpoch(model, optimizer, data.cache, labels, split, { epoch, batchSize, seed, augment, opts });
    const score = record.valAccuracy - 1e-6 * record.valLoss;
    const improved = score > state.bestScore;
    if (improved) {
      state.bestScore = score;
      state.bestEpoch = epoch;
      await saveModelDir(opts.out, model, { preprocessing: preprocessing(opts.fit), split: split.description });
    }
    state.history.push(record);
    state.epoch = epoch;
    state.adamStep = optimizer.stepCount;
    await writeCheckpoint(ckptDir, model, optimizer, state);
    opts.onEpochEnd?.(record, improved);
    if (opts.patience !== undefined && epoch - state.bestEpoch >= opts.patience) {
      log(`early stop: no better validation result for ${opts.patience} epochs`);
      stoppedEarly = true;
      break;
    }
  }
  optimizer.dispose();
  model.dispose();

  // Evaluate the best model on validation and test, write the report, the plots and model.json.
  const { loadModelDir } = await import('./model-dir.js');
  const best = loadModelDir(opts.out, engine).model;
  const validation = split.val.length ? await evaluateIndices(best, data.cache, labels, split.val, data.classes, batchSize) : null;
  const test = split.test.length ? await evaluateIndices(best, data.cache, labels, split.test, data.classes, batchSize) : null;
  const seconds = (Date.now() - started) / 1000;
  const trainImages = state.history.reduce((n, h) => n + h.imagesPerSecond * h.seconds, 0);
  const trainSeconds = state.history.reduce((n, h) => n + h.seconds, 0);
  const imagesPerSecond = trainSeconds > 0 ? trainImages / trainSeconds : 0;
  await saveModelDir(opts.out, best, {
    preprocessing: preprocessing(opts.fit),
    split: split.description,
    training: {
      command: opts.command,
      seed,
      epochs: state.epoch,
      bestEpoch: state.bestEpoch,
      batchSize,
      lr,
      lrSchedule: opts.lrSchedule ?? 'constant',
      augment: augment !== null,
      seconds: trainSeconds,
      imagesPerSecond,
      adapter: engine.describe(),
      history: state.history,
    },
    metrics: { validation: validation ?? undefined, test: test ?? undefined },
  });
  best.dispose();
  const report = { validation, test, history: state.history, bestEpoch: state.bestEpoch };
  writeFileAtomic(join(opts.out, 'report.json'), [new TextEncoder().encode(JSON.stringify(report, null, 2) + '\n')]);
  const epochsAxis = state.history;
  await writeCurvesPng(join(opts.out, 'loss.png'), [
    { name: 'train', values: epochsAxis.map((h) => h.trainLoss) },
    { name: 'validation', values: epochsAxis.map((h) => h.valLoss) },
  ], { title: 'Loss', yLabel: 'loss' });
  await writeCurvesPng(join(opts.out, 'accuracy.png'), [
    { name: 'train', values: epochsAxis.map((h) => h.trainAccuracy) },
    { name: 'validation', values: epochsAxis.map((h) => h.valAccuracy) },
  ], { title: 'Accuracy', yLabel: 'accuracy' });
  const cm = test ?? validation;
  if (cm) await writeConfusionPng(join(opts.out, 'confusion.png'), cm.confusion, cm.classes);
  return { modelDir: opts.out, history: state.history, bestEpoch: state.bestEpoch, test, validation, seconds, imagesPerSecond, stoppedEarly };
}

/** Mean and standard deviation of the (un-augmented) training images' pixels, in [0,1] units. */
async function pixelStats(source: ImageSource, labels: Int32Array, indices: number[]): Promise<{ mean: number; std: number }> {
  let n = 0;
  let sum = 0;
  let sumSq = 0;
  for await (const b of iterateBatches(source, labels, indices, { batchSize: 64, seed: 0, shuffle: false, augment: false })) {
    for (const v of b.x) {
      sum += v;
      sumSq += v * v;
    }
    n += b.x.length;
  }
  const mean = sum / n;
  const std = Math.sqrt(Math.max(sumSq / n - mean * mean, 0));
  return { mean: Math.fround(mean), std: Math.fround(std > 1e-3 ? std : 1) };
}

function preprocessing(fit: 'fill' | 'cover' | undefined) {
  return { grayscale: true as const, resize: fit ?? 'fill', scale: 1 / 255, offset: 0 };
}

/** The batch's input, integer labels, and (binary) float 0/1 targets [B,1]. */
function batchTensors(model: DefectClassifier, b: Batch): { x: Tensor; labels: Tensor; targets?: Tensor } {
  const engine = model.parameters()[0].engine;
  const task = model.config.task;
  const x = model.inputTensor(b.x, b.size);
  const labels = engine.tensor(b.labels, [b.size]);
  const targets = task === 'binary' ? engine.tensor(Float32Array.from(b.labels), [b.size, 1]) : undefined;
  return { x, labels, targets };
}

/** Predicted classes from read-back logits ([B,1] binary or [B,K]). */
function predictions(logits: Float32Array, b: number, task: Task): Int32Array {
  if (task === 'binary') return Int32Array.from(logits.subarray(0, b), (z) => (z > 0 ? 1 : 0));
  return argmaxRows(logits, logits.length / b);
}

async function runEpoch(
  model: DefectClassifier,
  optimizer: Adam,
  source: ImageSource,
  labels: Int32Array,
  split: SplitResult,
  ctx: { epoch: number; batchSize: number; seed: number; augment: AugmentOptions | null; opts: TrainOptions },
): Promise<EpochRecord> {
  const { epoch, batchSize, seed, augment, opts } = ctx;
  const engine = model.parameters()[0].engine;
  const task = model.config.task;
  const batches = Math.ceil(split.train.length / batchSize);
  opts.onEpochStart?.(epoch, batches);
  model.train();
  const t0 = Date.now();
  let lossSum = 0;
  let correct = 0;
  let seen = 0;
  // The loss/logits of batch i are read back while batch i+1 runs on the GPU (no stall per batch).
  let pending: Promise<void> | null = null;
  let batchIndex = 0;
  for await (const b of iterateBatches(source, labels, split.train, { batchSize, seed, epoch, augment })) {
    const { loss, logits } = engine.tidy(() => {
      const t = batchTensors(model, b);
      optimizer.zeroGrad();
      const z = model.logits(t.x);
      const l = lossFromLogits(z, t);
      l.backward();
      optimizer.step();
      return { loss: l, logits: z };
    });
    const readback = Promise.all([loss.item(), logits.toArray()]).then(([lv, zv]) => {
      loss.dispose();
      logits.dispose();
      if (!Number.isFinite(lv))
        throw new TrainingDivergedError(
          `loss is ${lv} at epoch ${epoch}, batch ${b.batchIndex}: training stopped; the last good checkpoint is intact (lower --lr, or check the data)`,
        );
      lossSum += lv * b.size;
      const pred = predictions(zv as Float32Array, b.size, task);
      for (let i = 0; i < b.size; i++) if (pred[i] === b.labels[i]) correct++;
      seen += b.size;
      const secs = (Date.now() - t0) / 1000;
      opts.onBatch?.({ epoch, batch: ++batchIndex, batches, loss: lossSum / seen, accuracy: correct / seen, imagesPerSecond: seen / Math.max(secs, 1e-3) });
    });
    const previous = pending;
    pending = readback;
    if (previous) {
      // If the previous batch failed (NaN loss), let this batch's readback settle before throwing.
      await previous.catch(async (e) => {
        await readback.catch(() => undefined);
        throw e;
      });
    }
  }
  if (pending) await pending;
  const seconds = (Date.now() - t0) / 1000;
  const val = split.val.length ? await lossAndAccuracy(model, source, labels, split.val, batchSize) : { loss: NaN, accuracy: NaN };
  return {
    epoch,
    trainLoss: lossSum / seen,
    trainAccuracy: correct / seen,
    valLoss: val.loss,
    valAccuracy: val.accuracy,
    imagesPerSecond: seen / seconds,
    seconds,
  };
}

/** BCE with logits (binary, float 0/1 targets) or cross-entropy (multiclass, integer labels). */
function lossFromLogits(z: Tensor, t: { labels: Tensor; targets?: Tensor }): Tensor {
  return t.targets ? F.binaryCrossEntropyWithLogits(z, t.targets) : F.crossEntropy(z, t.labels);
}

/** Mean loss and accuracy on a split (eval mode, no tape). */
async function lossAndAccuracy(model: DefectClassifier, source: ImageSource, labels: Int32Array, indices: number[], batchSize: number): Promise<{ loss: number; accuracy: number }> {
  const engine = model.parameters()[0].engine;
  const task = model.config.task;
  model.eval();
  let lossSum = 0;
  let correct = 0;
  let n = 0;
  for await (const b of iterateBatches(source, labels, indices, { batchSize, seed: 0, shuffle: false, augment: false })) {
    const { loss, logits } = noGrad(() =>
      engine.tidy(() => {
        const t = batchTensors(model, b);
        const z = model.logits(t.x);
        return { loss: lossFromLogits(z, t), logits: z };
      }),
    );
    const [lv, zv] = await Promise.all([loss.item(), logits.toArray()]);
    loss.dispose();
    logits.dispose();
    lossSum += lv * b.size;
    const pred = predictions(zv as Float32Array, b.size, task);
    for (let i = 0; i < b.size; i++) if (pred[i] === b.labels[i]) correct++;
    n += b.size;
  }
  model.train();
  return { loss: lossSum / n, accuracy: correct / n };
}

/** Probabilities for the images of `indices` (eval mode): [n,K] multiclass, [n] defect probability binary. */
export async function predictIndices(model: DefectClassifier, source: ImageSource, labels: ArrayLike<number>, indices: number[], batchSize = 32): Promise<{ probs: Float32Array; yTrue: Int32Array }> {
  const engine = model.parameters()[0].engine;
  model.eval();
  const k = model.config.task === 'binary' ? 1 : model.config.classes.length;
  const probs = new Float32Array(indices.length * k);
  const yTrue = new Int32Array(indices.length);
  let row = 0;
  for await (const b of iterateBatches(source, labels, indices, { batchSize, seed: 0, shuffle: false, augment: false })) {
    const p = noGrad(() => engine.tidy(() => model.probabilities(model.inputTensor(b.x, b.size))));
    probs.set((await p.toArray()) as Float32Array, row * k);
    p.dispose();
    yTrue.set(b.labels, row);
    row += b.size;
  }
  return { probs, yTrue };
}

/** Metrics of a model on the images of `indices`. */
export async function evaluateIndices(model: DefectClassifier, source: ImageSource, labels: ArrayLike<number>, indices: number[], classes: string[], batchSize = 32): Promise<MetricsReport> {
  const { probs, yTrue } = await predictIndices(model, source, labels, indices, batchSize);
  const yPred =
    model.config.task === 'binary' ? Int32Array.from(probs, (p) => (p > 0.5 ? 1 : 0)) : argmaxRows(probs, classes.length);
  return computeMetrics({ yTrue, yPred, classes, scores: probs });
}

async function writeCheckpoint(dir: string, model: DefectClassifier, opt: Adam, state: CheckpointState): Promise<void> {
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, 'model.safetensors'), await model.net.stateDict());
  writeSafetensors(join(dir, 'optimizer.safetensors'), await adamState(opt, model));
  // state.json last: a checkpoint is complete only once it names the epoch of the files above.
  writeFileAtomic(join(dir, 'state.json'), [new TextEncoder().encode(JSON.stringify(state))]);
}

async function adamState(opt: Adam, model: DefectClassifier): Promise<StateDict> {
  const out: StateDict = {};
  for (const [name, p] of model.net.namedParameters()) {
    const s = opt.moments(p);
    if (!s) continue;
    out[`${name}.exp_avg`] = { shape: [...p.shape], dtype: 'F32', data: (await s.m.toArray()) as Float32Array };
    out[`${name}.exp_avg_sq`] = { shape: [...p.shape], dtype: 'F32', data: (await s.v.toArray()) as Float32Array };
  }
  return out;
}

function loadAdamState(opt: Adam, state: StateDict, model: DefectClassifier): void {
  for (const [name, p] of model.net.namedParameters()) {
    const m = state[`${name}.exp_avg`];
    const v = state[`${name}.exp_avg_sq`];
    if (m && v) opt.setMoments(p, p.engine.fromArray(m.data as Float32Array, p.shape), p.engine.fromArray(v.data as Float32Array, p.shape));
  }
}
