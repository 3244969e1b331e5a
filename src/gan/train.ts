// Training a GAN on a class-per-folder image dataset: the data, split and augmentation of the
// classifier's pipeline, the adversarial step (step.ts), and the shared training loop (src/train):
// epochs, checkpoints with --resume, the NaN stop, progress. Per epoch it also measures sample
// diversity against real images (the mode-collapse alarm, diversity.ts), writes a sample grid from
// fixed noise every `sampleEvery` epochs, and a loadable snapshot every `saveEvery` epochs.
//
// Which real images the GAN sees: the dataset is split exactly as `wgsl-nn train` splits it (same
// seed and fractions), and the GAN trains on the training + validation parts only. The test split is
// never shown to it, so a classifier trained on its samples (TSTR) can be tested on that split.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { AugmentOptions } from '../data/augment.js';
import { assembleBatch, iterateBatches, numBatches, type Batch } from '../data/batch.js';
import { DatasetError } from '../data/dataset.js';
import { prepareDataset } from '../data/prepare.js';
import { firstPerClass } from '../data/split.js';
import { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import * as F from '../nn/functional.js';
import { WeightAverage } from '../nn/ema.js';
import { manualSeed } from '../nn/seed.js';
import type { Tensor } from '../nn/tensor.js';
import { writeFileAtomic } from '../nn/serialize.js';
import { runTrainingLoop, type BatchProgress } from '../train/loop.js';
import { Rng } from '../util/rng.js';
import { CollapseAlarm, relativeDiversity } from './diversity.js';
import { saveGanDir } from './model-dir.js';
import { Discriminator, Generator, resolveGanConfig, type GanArch, type GanConfig, type GeneratorUpsampling, type ResolvedGanConfig } from './models.js';
import { generateImages, gridLabels, writeImageGrid } from './samples.js';
import { GanStep, type DiscriminatorAugment, type GanLoss } from './step.js';
import type { DiffAugmentPolicy } from '../nn/functional.js';

export interface GanTrainOptions {
  data: string;
  out: string;
  arch: GanArch;
  /** Train on this class only (an unconditional model); default: every class, class-conditional. */
  className?: string;
  /** Every class's images as one unlabelled set (an unconditional model of the whole dataset, as the seed's GAN). */
  unconditional?: boolean;
  imageSize?: number;
  epochs?: number;
  batchSize?: number;
  lrG?: number;
  lrD?: number;
  beta1?: number;
  labelSmoothing?: number;
  /** The adversarial loss (GanStepOptions.loss; default bce). */
  loss?: GanLoss;
  /** Discriminator updates per generator update (GanStepOptions.discriminatorSteps; default 1). */
  discriminatorSteps?: number;
  /** DiffAugment ops on everything D sees; [] for none. Default: none for dense (the seed), color+translation+cutout for dcgan. */
  diffAugment?: DiffAugmentPolicy[];
  latentDim?: number;
  ngf?: number;
  ndf?: number;
  /** BatchNorm2d in the DCGAN discriminator (default: true without spectral norm, false with it). */
  discriminatorBatchNorm?: boolean;
  /** Spectral normalisation of the discriminator's weights (see GanConfig.spectralNorm). */
  spectralNorm?: boolean;
  /** Class-conditional BatchNorm in the DCGAN generator (see GanConfig.conditionalBatchNorm). */
  conditionalBatchNorm?: boolean;
  /** An auxiliary classifier head on the discriminator (AC-GAN; see GanConfig.auxiliaryClassifier). */
  auxiliaryClassifier?: boolean;
  /** How the DCGAN generator doubles the resolution (see GanConfig.upsampling; default transposed). */
  upsampling?: GeneratorUpsampling;
  /** Weight of the auxiliary classifier's cross-entropy in both losses (default 1; see GanStepOptions.classWeight). */
  classWeight?: number;
  /**
   * Keep an exponential moving average of the generator's weights with this decay (e.g. 0.999;
   * src/nn/ema.ts): samples, grids, the diversity measure and the saved generator are the average's.
   */
  emaDecay?: number;
  seed?: number;
  /** Seed of the split (default `seed`): the GAN trains on the train + validation parts of the split `wgsl-nn train --seed <splitSeed>` makes. */
  splitSeed?: number;
  /** Split fractions, as `wgsl-nn train` (the test split is never used). */
  testFraction?: number;
  valFraction?: number;
  /** Write a loadable snapshot to <out>/snapshots/epoch-NNNN every this many epochs (the seed's save interval; 0: never). */
  saveEvery?: number;
  /** Write <out>/samples/epoch-NNNN.png every this many epochs (default 1). */
  sampleEvery?: number;
  resume?: boolean;
  onBadImage?: 'skip' | 'fail';
  /** Use only the first `limitPerClass` training images of each class (scarce-data experiments). */
  limitPerClass?: number;
  engine?: Engine;
  log?: (line: string) => void;
  onEpochStart?: (epoch: number, batches: number) => void;
  onBatch?: (p: BatchProgress) => void;
  onEpochEnd?: (record: GanEpochRecord) => void;
  command?: string;
}

export interface GanEpochRecord {
  epoch: number;
  lossD: number;
  lossG: number;
  dReal: number;
  dFake: number;
  /** Sample diversity relative to real images (1 = as varied as real; near 0 = collapse). */
  diversity: number;
  collapseWarning: string | null;
  seconds: number;
  imagesPerSecond: number;
}

export interface GanTrainResult {
  modelDir: string;
  history: GanEpochRecord[];
  seconds: number;
  imagesPerSecond: number;
  iterationsPerSecond: number;
}

const DEFAULTS: Record<GanArch, { size: number; batch: number; augment: DiffAugmentPolicy[] }> = {
  dense: { size: 28, batch: 128, augment: [] },
  dcgan: { size: 64, batch: 64, augment: ['color', 'translation', 'cutout'] },
};

/** Real-image augmentation of the loader: flips only (label-preserving for surface textures); the dense seed GAN cuts random patches. */
function loaderAugment(arch: GanArch): AugmentOptions {
  return arch === 'dense'
    ? { cropScale: [0.5, 0.5], maxRotationDeg: 0, flipH: true, flipV: true }
    : { cropScale: [1, 1], maxRotationDeg: 0, flipH: true, flipV: true };
}

export async function trainGan(opts: GanTrainOptions): Promise<GanTrainResult> {
  const log = opts.log ?? (() => {});
  const engine = opts.engine ?? Engine.default;
  const d = DEFAULTS[opts.arch];
  if (!d) throw new WgslNnError(`unknown GAN architecture '${opts.arch}' (dense or dcgan)`);
  const seed = opts.seed ?? 1;
  const size = opts.imageSize ?? d.size;
  const epochs = opts.epochs ?? 100;
  const batchSize = opts.batchSize ?? d.batch;
  const sampleEvery = opts.sampleEvery ?? 1;
  const saveEvery = opts.saveEvery ?? 0;
  const started = Date.now();

  // The dense GAN's patches are cut from images loaded at twice the patch size.
  const splitSeed = opts.splitSeed ?? seed;
  const prepared = await prepareDataset(opts.data, 'multiclass', {
    size,
    seed: splitSeed,
    test: opts.testFraction ?? 0.2,
    val: opts.valFraction ?? 0.2,
    workScale: opts.arch === 'dense' ? 2 : 1,
    onBadImage: opts.onBadImage,
    onSkip: (_p, reason) => log(`warning: skipping ${reason}`),
  });
  const allClasses = prepared.dataset.classes;
  let indices = [...prepared.split.train, ...prepared.split.val];
  let classes = allClasses;
  let labels = prepared.labels;
  if (opts.className !== undefined) {
    const k = allClasses.indexOf(opts.className);
    if (k < 0) throw new DatasetError(`no class '${opts.className}' in ${opts.data} (classes: ${allClasses.join(', ')})`);
    indices = indices.filter((i) => labels[i] === k);
    classes = [opts.className];
    labels = Int32Array.from(labels, (l) => (l === k ? 0 : -1));
  }
  if (opts.unconditional) {
    if (opts.className !== undefined) throw new WgslNnError('--unconditional and --class exclude each other');
    classes = ['all'];
    labels = new Int32Array(labels.length);
  }
  if (opts.limitPerClass !== undefined) indices = firstPerClass(indices, labels, classes.length, opts.limitPerClass);
  if (indices.length < 2) throw new DatasetError(`too few training images for a GAN in ${opts.data}${opts.className ? ` (class '${opts.className}')` : ''}: ${indices.length}`);
  log(`data: ${indices.length} training images (test split of ${prepared.split.test.length} kept out; split seed ${splitSeed}), classes ${classes.join(', ')}${classes.length > 1 ? ' (class-conditional)' : ''}`);

  const config: GanConfig = {
    arch: opts.arch,
    imageSize: size,
    classes,
    latentDim: opts.latentDim,
    ngf: opts.ngf,
    ndf: opts.ndf,
    discriminatorBatchNorm: opts.discriminatorBatchNorm,
    spectralNorm: opts.spectralNorm,
    conditionalBatchNorm: opts.conditionalBatchNorm,
    auxiliaryClassifier: opts.auxiliaryClassifier,
    upsampling: opts.upsampling,
  };
  const resolved = resolveGanConfig(config);
  manualSeed(seed);
  const G = new Generator(resolved, engine);
  const D = new Discriminator(resolved, engine);
  // With an average, it is the generator that is sampled and saved; G keeps training (both checkpointed).
  const average = opts.emaDecay === undefined ? null : new WeightAverage(G, new Generator(resolved, engine), opts.emaDecay);
  average?.copy();
  const sampled = (average?.target as Generator | undefined) ?? G;
  const policy = opts.diffAugment ?? d.augment;
  const augment: DiscriminatorAugment | null = policy.length ? (x: Tensor, s: number) => F.diffAugment(x, { policy, seed: s }) : null;
  // Recorded (model.json, checkpoint options) only when not the default, so older checkpoints still resume.
  const discriminatorStepsRecord = (opts.discriminatorSteps ?? 1) !== 1 ? { discriminatorSteps: opts.discriminatorSteps } : {};
  const gan = new GanStep(G, D, { lrG: opts.lrG, lrD: opts.lrD, beta1: opts.beta1, labelSmoothing: opts.labelSmoothing, loss: opts.loss, discriminatorSteps: opts.discriminatorSteps, augment, classWeight: opts.classWeight, seed });

  // Fixed noise for the sample grids and the diversity measure; a fixed real batch to compare with.
  // One row per class (up to 16 samples each); an unconditional model gets an 8 x 8 grid.
  const perClass = classes.length === 1 ? 64 : Math.max(2, Math.min(16, Math.floor(64 / classes.length)));
  const gridColumns = classes.length === 1 ? 8 : perClass;
  const fixedLabels = gridLabels(classes.length, perClass);
  const realRef = await realReference(prepared.cache, labels, indices, classes.length, perClass, seed);
  const alarm = new CollapseAlarm();
  const samplesDir = join(opts.out, 'samples');
  mkdirSync(samplesDir, { recursive: true });
  const batchesPerEpoch = numBatches(indices.length, batchSize, indices.length > batchSize);
  const dataDescription = {
    root: opts.data,
    className: opts.className ?? null,
    unconditional: opts.unconditional ?? false,
    splitSeed,
    testFraction: opts.testFraction ?? 0.2,
    valFraction: opts.valFraction ?? 0.2,
    limitPerClass: opts.limitPerClass ?? null,
    images: indices.length,
    files: indices.map((i) => prepared.dataset.items[i].path),
  };
  const training = (history: GanEpochRecord[]) => ({
    command: opts.command,
    seed,
    epochs: history.length,
    batchSize,
    lrG: opts.lrG ?? 2e-4,
    lrD: opts.lrD ?? 2e-4,
    beta1: opts.beta1 ?? 0.5,
    labelSmoothing: opts.labelSmoothing ?? 0,
    ...(opts.loss && opts.loss !== 'bce' ? { loss: opts.loss } : {}),
    ...discriminatorStepsRecord,
    diffAugment: policy,
    ...(average ? { emaDecay: average.decay } : {}),
    adapter: engine.describe(),
    history,
  });

  // Epoch records of this run, for the model.json written at each epoch (the final one has the whole history).
  const historySoFar: GanEpochRecord[] = [];
  const loop = await runTrainingLoop<Batch, GanEpochRecord>({
    epochs,
    seed,
    engine,
    modules: { generator: G, discriminator: D, ...(average ? { generatorAverage: sampled } : {}) },
    optimizers: { generator: gan.optG, discriminator: gan.optD },
    batches: (epoch) => iterateBatches(prepared.cache, labels, indices, { batchSize, seed, epoch, augment: loaderAugment(opts.arch), dropLast: indices.length > batchSize }),
    batchesPerEpoch,
    step: (b, ctx) => {
      const l = gan.step(b.x, b.labels, (ctx.epoch - 1) * batchesPerEpoch + ctx.batch);
      average?.update();
      return { losses: { lossD: l.lossD, lossG: l.lossG, dReal: l.dReal, dFake: l.dFake }, samples: b.size };
    },
    evaluateEpoch: async (s) => {
      const fixed = await generateImages(sampled, fixedLabels, new Rng(seed ^ 0x5eed));
      const diversity = relativeDiversity(fixed, fixedLabels, realRef.x, realRef.labels, classes.length).mean;
      const warning = alarm.check(diversity);
      if (warning) log(`warning: epoch ${s.epoch}: ${warning}`);
      if (sampleEvery > 0 && (s.epoch % sampleEvery === 0 || s.epoch === epochs))
        await writeImageGrid(join(samplesDir, `epoch-${String(s.epoch).padStart(4, '0')}.png`), fixed, size, gridColumns);
      const record: GanEpochRecord = {
        epoch: s.epoch,
        lossD: s.losses.lossD,
        lossG: s.losses.lossG,
        dReal: s.losses.dReal,
        dFake: s.losses.dFake,
        diversity,
        collapseWarning: warning,
        seconds: s.seconds,
        imagesPerSecond: s.samplesPerSecond,
      };
      // GAN losses do not rank models; the latest generator is the model (score = epoch).
      return { record, score: s.epoch };
    },
    onImproved: async (outcome) => {
      await saveGanDir(opts.out, sampled, D, { data: dataDescription, training: training([...historySoFar, outcome.record]) });
      if (saveEvery > 0 && outcome.record.epoch % saveEvery === 0)
        await saveGanDir(join(opts.out, 'snapshots', `epoch-${String(outcome.record.epoch).padStart(4, '0')}`), sampled, D, {
          data: dataDescription,
          training: training([...historySoFar, outcome.record]),
        });
    },
    checkpoint: {
      dir: join(opts.out, 'checkpoint'),
      resume: opts.resume,
      // Options added after the first checkpoints were written appear only when not at their default, so
      // those checkpoints still resume (as checkpointConfig does for spectralNorm).
      options: {
        data: opts.data,
        className: opts.className ?? null,
        ...(opts.unconditional ? { unconditional: true } : {}),
        config: checkpointConfig(resolved),
        batchSize,
        seed,
        ...(splitSeed !== seed ? { splitSeed } : {}),
        diffAugment: policy,
        limitPerClass: opts.limitPerClass ?? null,
        ...(average ? { emaDecay: average.decay } : {}),
        ...(opts.classWeight !== undefined ? { classWeight: opts.classWeight } : {}),
        ...(opts.loss && opts.loss !== 'bce' ? { loss: opts.loss } : {}),
        ...discriminatorStepsRecord,
      },
      extraState: {
        save: () => ({ collapseAlarm: alarm.state }),
        load: (saved) => {
          const s = (saved as { collapseAlarm?: CollapseAlarm['state'] } | undefined)?.collapseAlarm;
          if (s) alarm.state = s;
        },
      },
    },
    divergedHint: 'lower the learning rates (--lr-g, --lr-d) or add label smoothing',
    onEpochStart: opts.onEpochStart,
    onBatch: opts.onBatch,
    onEpochEnd: (record) => {
      historySoFar.push(record);
      opts.onEpochEnd?.(record);
    },
    log,
  });
  const history = loop.history;
  // The model directory was written at each epoch; write it once more with the whole history (a resumed run's included).
  await saveGanDir(opts.out, sampled, D, { data: dataDescription, training: training(history) });
  gan.dispose();
  average?.target.dispose();
  G.dispose();
  D.dispose();
  const trainSeconds = history.reduce((n, h) => n + h.seconds, 0);
  const images = history.reduce((n, h) => n + h.imagesPerSecond * h.seconds, 0);
  const result: GanTrainResult = {
    modelDir: opts.out,
    history,
    seconds: (Date.now() - started) / 1000,
    imagesPerSecond: trainSeconds > 0 ? images / trainSeconds : 0,
    iterationsPerSecond: trainSeconds > 0 ? (history.length * batchesPerEpoch) / trainSeconds : 0,
  };
  writeFileAtomic(join(opts.out, 'history.json'), [new TextEncoder().encode(JSON.stringify(result, null, 2) + '\n')]);
  return result;
}

/**
 * The architecture as the checkpoint compares it on --resume: without spectralNorm / conditionalBatchNorm /
 * auxiliaryClassifier when off and without upsampling when transposed, so checkpoints written before those
 * options existed still match a run that does not use them.
 */
function checkpointConfig(c: ResolvedGanConfig): Partial<ResolvedGanConfig> {
  const { spectralNorm, conditionalBatchNorm, auxiliaryClassifier, upsampling, ...rest } = c;
  const on = Object.entries({ spectralNorm, conditionalBatchNorm, auxiliaryClassifier }).filter(([, v]) => v);
  return { ...rest, ...Object.fromEntries(on), ...(upsampling !== 'transposed' ? { upsampling } : {}) };
}

/** Up to `perClass` un-augmented real images of each class, for the diversity reference. */
async function realReference(
  source: Parameters<typeof assembleBatch>[0],
  labels: Int32Array,
  indices: number[],
  classes: number,
  perClass: number,
  seed: number,
): Promise<{ x: Float32Array; labels: Int32Array }> {
  const picked: number[] = [];
  const order = new Rng(seed).shuffle(indices.slice());
  for (let k = 0; k < classes; k++) picked.push(...order.filter((i) => labels[i] === k).slice(0, perClass));
  const { x, labels: lab } = await assembleBatch(source, labels, picked);
  return { x, labels: lab };
}
