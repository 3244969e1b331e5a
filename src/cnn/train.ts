// Training the surface-defect classifier on the shared training machinery (src/train/): data loading
// and split, the classifier's step (loss and running accuracy), validation and model selection by
// validation accuracy (ties: lower loss), and the final test-split evaluation with a JSON report and
// PNG plots. The epoch loop, checkpoints with --resume, early stopping and the NaN stop are src/train/loop.ts.
import { join } from 'node:path';
import { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import * as F from '../nn/functional.js';
import { manualSeed } from '../nn/seed.js';
import { noGrad, Tensor } from '../nn/tensor.js';
import { Adam } from '../nn/optim.js';
import { writeFileAtomic } from '../nn/serialize.js';
import { iterateBatches, numBatches, type Batch } from '../data/batch.js';
import type { ImageSource } from '../data/cache.js';
import { prepareDataset } from '../data/prepare.js';
import type { AugmentOptions } from '../data/augment.js';
import { argmaxRows, computeMetrics, type MetricsReport } from '../eval/metrics.js';
import { historySeries, writeConfusionPng, writeCurvesPng } from '../eval/plots.js';
import { runTrainingLoop, type TrainingLoopResult } from '../train/loop.js';
import type { LrSchedule } from '../train/schedule.js';
import { DefectClassifier, type Task } from './model.js';
import { mixGeneratedImages, type SyntheticSampling } from './synthetic-mix.js';
import { firstPerClass } from '../data/split.js';
import { initFromModelDir, loadModelDir, saveModelDir, type EpochRecord } from './model-dir.js';
import { binaryMetricsAt, chooseThreshold, DEFAULT_OPERATING_POINT, formatOperatingPoint, ratesAt, storedDecision, type OperatingPoint, type StoredDecision } from './calibration.js';

export { TrainingDivergedError } from '../train/loop.js';

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
  /** Seed of the train/validation/test split (default `seed`); fix it to vary only the training seed over one split. */
  splitSeed?: number;
  /** Fraction of each class kept for the test split (default 0.2). */
  testFraction?: number;
  /** Fraction of the rest kept for validation (default 0.2, the seed's validation split). */
  valFraction?: number;
  augment?: boolean | AugmentOptions;
  /** 'constant' (the seed) or 'cosine': lr * (1 + cos(pi * (epoch - 1) / epochs)) / 2 per epoch. */
  lrSchedule?: LrSchedule;
  /** Stop after this many epochs without a better validation result (default: never). */
  patience?: number;
  resume?: boolean;
  /** 'skip' drops unreadable images with a warning; 'fail' stops at the first (default 'fail'). */
  onBadImage?: 'skip' | 'fail';
  /** Input standardisation: by the training split's statistics (default) or per image. */
  normalize?: 'dataset' | 'image';
  /** Channel widths of the conv blocks (default the seed's 32, 64, 128). */
  channels?: [number, number, number];
  /** Conv padding of the seed CNN ('valid', the seed's, by default; see ModelConfig.padding). */
  padding?: 'valid' | 'same';
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
  /** A GAN model directory whose generated images are mixed into training (see synthetic-mix.ts). */
  augmentWith?: string;
  /** Generated images per real training image of the same class (default 1). */
  syntheticRatio?: number;
  /** 'pool' (default): generated images join the training set; 'balanced': every batch half real, half generated. */
  syntheticSampling?: SyntheticSampling;
  /**
   * Scarce-data experiments: train on only the first n images per class of the training + validation
   * splits (the same images a GAN trained with the same limit sees), with no validation split (the
   * last epoch is kept). The test split is unchanged.
   */
  limitPerClass?: number;
  /**
   * Binary models: the operating point whose decision threshold is chosen on the validation split and
   * stored in model.json (default far=0.05; see calibration.ts). Without a validation split none is stored.
   */
  operatingPoint?: OperatingPoint;
  /**
   * Transfer learning: a classifier model directory whose weights of matching name and shape (the
   * convolutions, for the same channel widths) replace the random initialisation.
   */
  initFrom?: string;
  /** Store ModelConfig.testTimeFlips: the stored threshold, validation and test metrics use the four-flip mean. */
  testTimeFlips?: boolean;
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
  /** Binary models: the stored decision threshold (null: none could be chosen, 0.5 applies). */
  decision?: StoredDecision | null;
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
  if (opts.operatingPoint && opts.task !== 'binary') throw new WgslNnError('an operating point (decision threshold) is for binary models; train with task binary');

  const splitSeed = opts.splitSeed ?? seed;
  const prepared = await prepareDataset(opts.data, opts.task, {
    size,
    seed: splitSeed,
    test: opts.testFraction ?? 0.2,
    val: opts.valFraction ?? 0.2,
    fit: opts.fit,
    onBadImage: opts.onBadImage,
    onSkip: (_path, reason) => log(`warning: skipping ${reason}`),
  });
  const { split } = prepared;
  const classes = prepared.dataset.classes;
  let labels = prepared.labels;
  // The images trained on and validated on (a scarce-data limit takes the first n per class of both, and drops validation).
  const limit = opts.limitPerClass;
  const trainIdx = limit === undefined ? split.train : firstPerClass([...split.train, ...split.val], labels, classes.length, limit);
  const valIdx = limit === undefined ? split.val : [];
  log(`data: ${prepared.dataset.items.length} images, classes ${classes.join(', ')}; train ${trainIdx.length}, val ${valIdx.length}, test ${split.test.length}`);
  if (trainIdx.length === 0) throw new WgslNnError('the training split is empty: the dataset is too small');
  const stats = await pixelStats(prepared.cache, labels, trainIdx);
  const mix = opts.augmentWith
    ? await mixGeneratedImages(prepared.cache, labels, classes, trainIdx, {
        ganDir: opts.augmentWith,
        ratio: opts.syntheticRatio,
        sampling: opts.syntheticSampling,
        seed,
        engine,
      })
    : null;
  if (mix) {
    labels = mix.labels;
    log(`generated images from ${opts.augmentWith} (${opts.syntheticSampling ?? 'pool'}): ${Object.entries(mix.perClass).map(([c, n]) => `${c} ${n}`).join(', ')}`);
  }
  const data = { classes, items: prepared.dataset.items, cache: mix ? mix.source : prepared.cache };
  const epochIndices = (epoch: number) => (mix ? mix.epochIndices(epoch) : { indices: trainIdx, shuffle: true });

  manualSeed(seed);
  const model = new DefectClassifier(
    { task: opts.task, classes: data.classes, inputSize: size, channels: opts.channels, padding: opts.padding, inputMean: stats.mean, inputStd: stats.std, normalize: opts.normalize, testTimeFlips: opts.testTimeFlips },
    engine,
  );
  const init = opts.initFrom ? initFromModelDir(model, opts.initFrom) : null;
  if (init) log(`initialised from ${opts.initFrom}: ${init.copied.join(', ')}${init.skipped.length ? `; kept random: ${init.skipped.join(', ')}` : ''}`);
  const optimizer = new Adam(model.parameters(), { lr });
  const task = model.config.task;
  // Running accuracy of the epoch, counted as the steps' logits come back.
  let correct = 0;
  let counted = 0;

  let loop: TrainingLoopResult<EpochRecord>;
  try {
    loop = await runTrainingLoop<Batch, EpochRecord>({
      epochs,
      seed,
      lrSchedule: opts.lrSchedule ?? 'constant',
      baseLr: { model: lr },
      patience: opts.patience,
      scoreName: 'validation result',
      divergedHint: 'lower --lr, or check the data',
      engine,
      modules: { model: model.net },
      optimizers: { model: optimizer },
      checkpoint: {
        dir: join(opts.out, 'checkpoint'),
        // What must match for --resume to continue the same run (the learning rate may change).
        options: {
          data: opts.data,
          task: opts.task,
          size,
          batchSize,
          seed,
          splitSeed,
          channels: model.config.channels,
          padding: model.config.padding,
          normalize: model.config.normalize,
          augmentWith: opts.augmentWith,
          syntheticRatio: opts.augmentWith ? (opts.syntheticRatio ?? 1) : undefined,
          syntheticSampling: opts.augmentWith ? (opts.syntheticSampling ?? 'pool') : undefined,
          limitPerClass: limit,
          initFrom: opts.initFrom,
        },
        resume: opts.resume,
      },
      batchesPerEpoch: (epoch) => numBatches(epochIndices(epoch).indices.length, batchSize),
      batches: (epoch) => {
        const { indices, shuffle } = epochIndices(epoch);
        return iterateBatches(data.cache, labels, indices, { batchSize, seed, epoch, augment, shuffle });
      },
      onEpochStart: (epoch, batches) => {
        correct = counted = 0;
        opts.onEpochStart?.(epoch, batches);
      },
      step: (b) => {
        const t = batchTensors(model, b);
        optimizer.zeroGrad();
        const z = model.logits(t.x);
        const loss = lossFromLogits(z, t);
        loss.backward();
        optimizer.step();
        return {
          losses: { loss },
          outputs: { logits: z },
          samples: b.size,
          onValues: ({ outputs }) => {
            const pred = predictions(outputs.logits as Float32Array, b.size, task);
            for (let i = 0; i < b.size; i++) if (pred[i] === b.labels[i]) correct++;
            counted += b.size;
            return { accuracy: correct / counted };
          },
        };
      },
      onBatch: (p) =>
        opts.onBatch?.({ epoch: p.epoch, batch: p.batch, batches: p.batches, loss: p.losses.loss, accuracy: p.metrics.accuracy, imagesPerSecond: p.samplesPerSecond }),
      evaluateEpoch: async (s) => {
        const val = valIdx.length ? await lossAndAccuracy(model, data.cache, labels, valIdx, batchSize) : { loss: NaN, accuracy: NaN };
        const record: EpochRecord = {
          epoch: s.epoch,
          trainLoss: s.losses.loss,
          trainAccuracy: correct / counted,
          valLoss: val.loss,
          valAccuracy: val.accuracy,
          imagesPerSecond: s.samplesPerSecond,
          seconds: s.seconds,
        };
        // Without a validation split the latest epoch is kept.
        return valIdx.length ? { record, score: val.accuracy, tiebreak: val.loss } : { record, score: s.epoch };
      },
      onImproved: () => saveModelDir(opts.out, model, { preprocessing: preprocessing(opts.fit), split: split.description }),
      onEpochEnd: (record, improved) => opts.onEpochEnd?.(record, improved),
      log,
    });
  } finally {
    optimizer.dispose();
    model.dispose();
  }

  // Evaluate the best model on validation and test, write the report, the plots and model.json.
  const best = loadModelDir(opts.out, engine).model;
  // Binary models: the decision threshold for the operating point, chosen on validation; both splits' metrics at it.
  let decision: StoredDecision | null | undefined;
  let threshold = 0.5;
  if (task === 'binary') {
    decision = null;
    const op = opts.operatingPoint ?? DEFAULT_OPERATING_POINT;
    if (valIdx.length) {
      const { probs, yTrue } = await predictIndices(best, data.cache, labels, valIdx, batchSize);
      try {
        const chosen = chooseThreshold(probs, yTrue, op);
        threshold = chosen.threshold;
        const testRates = split.test.length ? await predictIndices(best, data.cache, labels, split.test, batchSize).then((t) => ratesAt(t.probs, t.yTrue, threshold)) : undefined;
        decision = storedDecision(op, chosen, testRates, 'train');
        log(`decision threshold ${threshold.toFixed(4)} for ${formatOperatingPoint(op)} on validation: false alarms ${chosen.falseAlarms}/${chosen.good}, defect recall ${chosen.defectRecall.toFixed(3)}`);
      } catch (e) {
        if (!(e instanceof WgslNnError)) throw e;
        log(`warning: no decision threshold stored (0.5 applies): ${e.message}`);
      }
    } else log('warning: no validation split, so no decision threshold is chosen (0.5 applies); run `wgsl-nn calibrate` on a model with one');
  }
  const validation = valIdx.length ? await evaluateIndices(best, data.cache, labels, valIdx, data.classes, batchSize, threshold) : null;
  const test = split.test.length ? await evaluateIndices(best, data.cache, labels, split.test, data.classes, batchSize, threshold) : null;
  const seconds = (Date.now() - started) / 1000;
  const history = loop.history;
  const trainImages = history.reduce((n, h) => n + h.imagesPerSecond * h.seconds, 0);
  const trainSeconds = history.reduce((n, h) => n + h.seconds, 0);
  const imagesPerSecond = trainSeconds > 0 ? trainImages / trainSeconds : 0;
  await saveModelDir(opts.out, best, {
    preprocessing: preprocessing(opts.fit),
    split: split.description,
    training: {
      command: opts.command,
      seed,
      epochs: loop.epoch,
      bestEpoch: loop.bestEpoch,
      batchSize,
      lr,
      lrSchedule: opts.lrSchedule ?? 'constant',
      augment: augment !== null,
      synthetic: mix ? { ganDir: opts.augmentWith!, ratio: opts.syntheticRatio ?? 1, sampling: opts.syntheticSampling ?? 'pool', perClass: mix.perClass } : undefined,
      limitPerClass: limit,
      initFrom: init ? { model: opts.initFrom!, copied: init.copied } : undefined,
      seconds: trainSeconds,
      imagesPerSecond,
      adapter: engine.describe(),
      history,
    },
    metrics: { validation: validation ?? undefined, test: test ?? undefined },
    decision: decision ?? undefined,
  });
  best.dispose();
  const report = { validation, test, history, bestEpoch: loop.bestEpoch };
  writeFileAtomic(join(opts.out, 'report.json'), [new TextEncoder().encode(JSON.stringify(report, null, 2) + '\n')]);
  await writeCurvesPng(join(opts.out, 'loss.png'), historySeries(history, { train: 'trainLoss', validation: 'valLoss' }), { title: 'Loss', yLabel: 'loss' });
  await writeCurvesPng(join(opts.out, 'accuracy.png'), historySeries(history, { train: 'trainAccuracy', validation: 'valAccuracy' }), {
    title: 'Accuracy',
    yLabel: 'accuracy',
  });
  const cm = test ?? validation;
  if (cm) await writeConfusionPng(join(opts.out, 'confusion.png'), cm.confusion, cm.classes);
  return { modelDir: opts.out, history, bestEpoch: loop.bestEpoch, test, validation, seconds, imagesPerSecond, stoppedEarly: loop.stoppedEarly, decision };
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
  model.eval();
  const k = model.outputs;
  const probs = new Float32Array(indices.length * k);
  const yTrue = new Int32Array(indices.length);
  let row = 0;
  for await (const b of iterateBatches(source, labels, indices, { batchSize, seed: 0, shuffle: false, augment: false })) {
    probs.set(await model.predict(b.x, b.size), row * k);
    yTrue.set(b.labels, row);
    row += b.size;
  }
  return { probs, yTrue };
}

/** Metrics of a model on the images of `indices` (binary models: 'defect' when P(defect) >= threshold). */
export async function evaluateIndices(model: DefectClassifier, source: ImageSource, labels: ArrayLike<number>, indices: number[], classes: string[], batchSize = 32, threshold = 0.5): Promise<MetricsReport> {
  const { probs, yTrue } = await predictIndices(model, source, labels, indices, batchSize);
  if (model.config.task === 'binary') return binaryMetricsAt(probs, yTrue, threshold, classes);
  return computeMetrics({ yTrue, yPred: argmaxRows(probs, classes.length), classes, scores: probs });
}
