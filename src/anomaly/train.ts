// Training the anomaly detector on defect-free images only (f-AnoGAN, Schlegl et al. 2019, on patches):
//
//   1. data      the folders named good/free/ok/normal (any other folder is ignored); the good images are
//                split as `wgsl-nn train --task binary` splits its good class (same seed, fractions and
//                duplicate grouping): train (the networks), validation (calibration and threshold), test
//                (never touched here; `anomaly eval --split test` reports on it).
//   2. GAN       a DCGAN (src/gan/models.ts, the adversarial step of src/gan/step.ts with DiffAugment) on
//                random patches of the training images (half of them on the scoring grid, so that the
//                patches at the image edges are seen as often as they are scored): G learns the
//                manifold of defect-free surface.
//   3. encoder   E learns to invert G with G and D frozen ("izif" training): minimise
//                  mean (x - G(E(x)))^2 + kappa * mean (f(x) - f(G(E(x))))^2,   f = D's body features,
//                on real training patches, so that G(E(x)) is the closest defect-free patch to x.
//   3b. memory   optional (`memory`): a feature memory (feature-memory.ts) filled from part of the training
//                images (the rest fit the edge profile), a third term of the anomaly map;
//   4. calibrate (calibrate.ts) the map's units and edge profile, choose the scoring settings on synthetic
//                defects drawn on the validation good images, and set the decision threshold at the
//                false-alarm rate on the validation good images.
// Each stage runs on the shared training loop (src/train/loop.ts) with its own checkpoint under
// <out>/checkpoint/{gan,encoder}; --resume continues whichever stage was interrupted (a finished stage is
// loaded, not repeated). Per epoch: a GAN sample grid (samples/gan-epoch-NNNN.png) or a reconstruction
// grid (samples/encoder-epoch-NNNN.png: rows of real patches, each followed by its reconstruction).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatasetError, GOOD_FOLDER_NAMES, isGoodFolder, scanDataset, type DatasetItem } from '../data/dataset.js';
import { type GrayImage8, ImageDecodeError, loadGray8, pixelHash } from '../data/images.js';
import { mixSeed, stratifiedSplit } from '../data/split.js';
import { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import { Discriminator, Generator, resolveGanConfig } from '../gan/models.js';
import { generateImages, writeImageGrid } from '../gan/samples.js';
import { GanStep, type DiscriminatorAugment } from '../gan/step.js';
import * as F from '../nn/functional.js';
import type { DiffAugmentPolicy } from '../nn/functional.js';
import { resolveDefectOptions, type SyntheticDefectOptions } from './proxy.js';
import { Adam } from '../nn/optim.js';
import { writeFileAtomic } from '../nn/serialize.js';
import { manualSeed } from '../nn/seed.js';
import { noGrad, type Tensor } from '../nn/tensor.js';
import { runTrainingLoop, type BatchProgress } from '../train/loop.js';
import { Rng } from '../util/rng.js';
import { resolveAnomalyConfig, type AnomalyConfig, type ResolvedAnomalyConfig } from './config.js';
import { Encoder } from './encoder.js';
import { calibrate, defaultScoringCandidates, EDGE_REFERENCE_IMAGES, type CandidateResult, type ScoringSettings } from './calibrate.js';
import { buildFeatureMemory, memoryAndReference, type MemoryOptions } from './feature-memory.js';
import { saveAnomalyDir } from './model-dir.js';
import { randomPatches, workImageFrom, type WorkImage } from './patches.js';
import { patchResiduals, toModelRange, type AnomalyNetworks, type Scoring } from './scorer.js';

export type AnomalyPhase = 'gan' | 'encoder';

export interface AnomalyTrainOptions {
  data: string;
  out: string;
  config?: Partial<AnomalyConfig>;
  /** Epochs of the GAN stage and of the encoder stage. */
  ganEpochs?: number;
  encoderEpochs?: number;
  /** Random patches drawn per training image per epoch (default 32). */
  patchesPerImage?: number;
  /** Share of training patches placed on the scoring grid, edges included (default 0.5; the rest anywhere). */
  gridShare?: number;
  batchSize?: number;
  lrG?: number;
  lrD?: number;
  lrE?: number;
  beta1?: number;
  /** Weight of the discriminator-feature term in the encoder loss (f-AnoGAN's kappa, default 1). */
  kappa?: number;
  /** DiffAugment ops on everything D sees (default translation and cutout; [] for none). */
  diffAugment?: DiffAugmentPolicy[];
  /**
   * Scoring settings: the map smoothing's std in working pixels, the image score's top-k, the feature
   * term's weight, mirror averaging. Any of them given fixes all (defaults 2, 16, 1, false); none given lets calibration
   * choose among `scoringCandidates` (default DEFAULT_SCORING_CANDIDATES) on synthetic defects.
   */
  sigma?: number;
  topK?: number;
  featureWeight?: number;
  mirror?: boolean;
  scoringCandidates?: ScoringSettings[];
  /** The memory-alone mixes of the default candidates (defaultScoringCandidates). */
  memoryMixes?: number[][];
  /** The synthetic defects calibration chooses the scoring on (default: full contrast, one draw per image and kind). */
  defects?: SyntheticDefectOptions;
  /** Add a feature memory on each of these classifiers' convolutions (feature-memory.ts); calibration then also weighs their term. */
  memories?: MemoryOptions[];
  /** False-alarm rate on the validation good images that sets the threshold (default 0.05). */
  falseAlarmRate?: number;
  seed?: number;
  testFraction?: number;
  valFraction?: number;
  /** Write a sample / reconstruction grid every n epochs (default 1; 0 never). */
  sampleEvery?: number;
  resume?: boolean;
  onBadImage?: 'skip' | 'fail';
  engine?: Engine;
  log?: (line: string) => void;
  onEpochStart?: (phase: AnomalyPhase, epoch: number, batches: number) => void;
  onBatch?: (phase: AnomalyPhase, p: BatchProgress) => void;
  onEpochEnd?: (record: AnomalyEpochRecord) => void;
  command?: string;
}

export interface AnomalyEpochRecord {
  phase: AnomalyPhase;
  epoch: number;
  /** GAN stage. */
  lossD?: number;
  lossG?: number;
  dReal?: number;
  dFake?: number;
  /** Encoder stage: training loss and its two terms, and the loss on fixed validation patches. */
  loss?: number;
  pixelLoss?: number;
  featureLoss?: number;
  valLoss?: number;
  seconds: number;
  imagesPerSecond: number;
}

export interface AnomalyTrainResult {
  modelDir: string;
  history: AnomalyEpochRecord[];
  threshold: number;
  scoring: Scoring;
  /** Validation good images' scores (the threshold's basis). */
  validationScores: number[];
  /** The scoring candidates' ROC-AUCs on synthetic defects (when calibration chose among several). */
  selection?: CandidateResult[];
  counts: { train: number; val: number; test: number };
  /** Wall time of this run, and training time and patches/s over both stages (all runs, resumed ones included). */
  seconds: number;
  trainSeconds: number;
  patchesPerSecond: number;
}

const DEFAULT_AUGMENT: DiffAugmentPolicy[] = ['translation', 'cutout'];

interface GoodImages {
  items: DatasetItem[];
  images: WorkImage[];
  /** The decoded images at their own size (calibration draws synthetic defects on them). */
  originals: GrayImage8[];
  split: { train: number[]; val: number[]; test: number[] };
  goodFolders: string[];
  skipped: { path: string; reason: string }[];
}

/** Scans `root`, loads the good images (train and validation at the working resolution) and splits them. */
async function loadGoodImages(root: string, config: ResolvedAnomalyConfig, opts: AnomalyTrainOptions, log: (l: string) => void): Promise<GoodImages> {
  const scanned = await scanDataset(root, 'binary', { allowSingleClass: true });
  const goodFolders = scanned.folders.filter(isGoodFolder);
  const candidates = scanned.items.filter((it) => isGoodFolder(it.folder));
  if (candidates.length === 0)
    throw new DatasetError(
      `no good images to train on in ${root}: the detector trains on folders named ${GOOD_FOLDER_NAMES.join(', ')} only ` +
        `(found folders: ${scanned.folders.join(', ')})`,
    );
  const items: DatasetItem[] = [];
  const images: WorkImage[] = [];
  const originals: GrayImage8[] = [];
  const hashes: string[] = [];
  const skipped: { path: string; reason: string }[] = [];
  for (const it of candidates) {
    try {
      const g = await loadGray8(it.path);
      hashes.push(pixelHash(g));
      images.push(await workImageFrom(g, config));
      originals.push(g);
      items.push({ ...it, label: 0 });
    } catch (e) {
      if (!(e instanceof ImageDecodeError) || opts.onBadImage !== 'skip') throw e;
      skipped.push({ path: it.path, reason: e.message });
      log(`warning: skipping ${e.message}`);
    }
  }
  // The binary classifier's split of its good class (class 'good', index 0): same keys, seed and groups.
  const split = stratifiedSplit(items, ['good'], { seed: opts.seed ?? 1, test: opts.testFraction ?? 0.2, val: opts.valFraction ?? 0.2, groups: hashes });
  if (split.train.length < 2 || split.val.length < 1)
    throw new DatasetError(
      `too few good images in ${root} (${items.length}): need at least 2 for training and 1 for validation after the split ` +
        `(train ${split.train.length}, val ${split.val.length}, test ${split.test.length})`,
    );
  return { items, images, originals, split: { train: split.train, val: split.val, test: split.test }, goodFolders, skipped };
}

export async function trainAnomalyDetector(opts: AnomalyTrainOptions): Promise<AnomalyTrainResult> {
  const log = opts.log ?? (() => {});
  const engine = opts.engine ?? Engine.default;
  const config = resolveAnomalyConfig(opts.config);
  const seed = opts.seed ?? 1;
  const ganEpochs = opts.ganEpochs ?? 60;
  const encoderEpochs = opts.encoderEpochs ?? 30;
  const batchSize = opts.batchSize ?? 64;
  const patchesPerImage = opts.patchesPerImage ?? 32;
  const gridShare = opts.gridShare ?? 0.5;
  if (!(gridShare >= 0 && gridShare <= 1)) throw new WgslNnError(`gridShare must be in [0, 1], got ${gridShare}`);
  const kappa = opts.kappa ?? 1;
  const sampleEvery = opts.sampleEvery ?? 1;
  const policy = opts.diffAugment ?? DEFAULT_AUGMENT;
  const rate = opts.falseAlarmRate ?? 0.05;
  for (const [name, v] of [['ganEpochs', ganEpochs], ['encoderEpochs', encoderEpochs], ['batchSize', batchSize], ['patchesPerImage', patchesPerImage]] as const)
    if (!Number.isInteger(v) || v < 1) throw new WgslNnError(`${name} must be a positive integer, got ${v}`);
  resolveDefectOptions(opts.defects); // checked before the training, not at its end
  const P = config.patchSize;
  const started = Date.now();

  const good = await loadGoodImages(opts.data, config, opts, log);
  const trainImages = good.split.train.map((i) => good.images[i]);
  const valImages = good.split.val.map((i) => good.images[i]);
  log(
    `data: ${good.items.length} good images in ${good.goodFolders.join(', ')} (other folders ignored): ` +
      `train ${trainImages.length}, validation ${valImages.length}, test ${good.split.test.length} (kept out)`,
  );
  const samplesDir = join(opts.out, 'samples');
  mkdirSync(samplesDir, { recursive: true });
  const batchesPerEpoch = Math.max(1, Math.ceil((trainImages.length * patchesPerImage) / batchSize));
  const sampling = { gridShare, stride: config.stride };
  const batchRng = (stage: number, epoch: number, b: number) => new Rng(mixSeed(seed, stage, epoch, b));
  const dataOptions = { data: opts.data, seed, testFraction: opts.testFraction ?? 0.2, valFraction: opts.valFraction ?? 0.2, config, batchSize, patchesPerImage, gridShare };

  // ---- stage 1: the GAN
  const gan = resolveGanConfig({ arch: 'dcgan', imageSize: P, classes: ['good'], latentDim: config.latentDim, ngf: config.ngf, ndf: config.ndf });
  manualSeed(seed);
  const G = new Generator(gan, engine);
  const D = new Discriminator(gan, engine);
  const augment: DiscriminatorAugment | null = policy.length ? (x: Tensor, s: number) => F.diffAugment(x, { policy, seed: s }) : null;
  const ganStep = new GanStep(G, D, { lrG: opts.lrG, lrD: opts.lrD, beta1: opts.beta1, augment, seed });
  const labels = new Int32Array(batchSize);
  const fixedLabels = new Int32Array(64);
  const history: AnomalyEpochRecord[] = [];

  const ganLoop = await runTrainingLoop<Float32Array, AnomalyEpochRecord>({
    epochs: ganEpochs,
    seed,
    engine,
    modules: { generator: G, discriminator: D },
    optimizers: { generator: ganStep.optG, discriminator: ganStep.optD },
    batchesPerEpoch,
    batches: function* (epoch) {
      for (let b = 0; b < batchesPerEpoch; b++) yield randomPatches(trainImages, batchSize, P, batchRng(1, epoch, b), sampling);
    },
    step: (x, ctx) => {
      const l = ganStep.step(x, labels, (ctx.epoch - 1) * batchesPerEpoch + ctx.batch);
      return { losses: { lossD: l.lossD, lossG: l.lossG, dReal: l.dReal, dFake: l.dFake }, samples: batchSize };
    },
    evaluateEpoch: async (s) => {
      if (sampleEvery > 0 && (s.epoch % sampleEvery === 0 || s.epoch === ganEpochs)) {
        const fixed = await generateImages(G, fixedLabels, new Rng(seed ^ 0x5eed));
        await writeImageGrid(join(samplesDir, `gan-epoch-${String(s.epoch).padStart(4, '0')}.png`), fixed, P, 8);
      }
      const record: AnomalyEpochRecord = { phase: 'gan', epoch: s.epoch, ...(s.losses as Record<'lossD' | 'lossG' | 'dReal' | 'dFake', number>), seconds: s.seconds, imagesPerSecond: s.samplesPerSecond };
      return { record, score: s.epoch };
    },
    checkpoint: { dir: join(opts.out, 'checkpoint', 'gan'), resume: opts.resume, options: { ...dataOptions, stage: 'gan', gan, diffAugment: policy } },
    divergedHint: 'lower the learning rates (--lr-g, --lr-d)',
    onEpochStart: (e, b) => opts.onEpochStart?.('gan', e, b),
    onBatch: (p) => opts.onBatch?.('gan', p),
    onEpochEnd: (r) => opts.onEpochEnd?.(r),
    log,
  });
  history.push(...ganLoop.history);
  ganStep.dispose();

  // ---- stage 2: the encoder, G and D frozen (its initialisation seeded here: the same whether stage 1 ran or was resumed)
  manualSeed(mixSeed(seed, 2));
  const E = new Encoder(P, config.latentDim, config.nef, engine);
  const nets: AnomalyNetworks = { generator: G, discriminator: D, encoder: E };
  const optE = new Adam(E.parameters(), { lr: opts.lrE ?? 2e-4, betas: [opts.beta1 ?? 0.5, 0.999] });
  const frozen = [...G.parameters(), ...D.parameters()];
  const valPatches = randomPatches(valImages, 256, P, new Rng(mixSeed(seed, 3)), { flips: false, ...sampling });
  const encoderLoss = (x: Tensor) => {
    const xr = G.forward(E.forward(x));
    const d = F.sub(xr, x);
    const pixel = F.mean(F.mul(d, d));
    const fx = noGrad(() => D.body.forward(x));
    const fd = F.sub(D.body.forward(xr), fx);
    const feature = F.mean(F.mul(fd, fd));
    return { loss: F.add(pixel, F.mul(feature, kappa)), pixel, feature };
  };

  let encLoop;
  G.eval();
  D.eval();
  for (const p of frozen) p.requiresGrad = false;
  try {
    encLoop = await runTrainingLoop<Float32Array, AnomalyEpochRecord>({
      epochs: encoderEpochs,
      seed,
      engine,
      modules: { encoder: E },
      optimizers: { encoder: optE },
      batchesPerEpoch,
      batches: function* (epoch) {
        for (let b = 0; b < batchesPerEpoch; b++) yield randomPatches(trainImages, batchSize, P, batchRng(2, epoch, b), sampling);
      },
      step: (x) => {
        optE.zeroGrad();
        const l = encoderLoss(engine.tensor(toModelRange(x), [batchSize, 1, P, P]));
        l.loss.backward();
        optE.step();
        return { losses: { loss: l.loss.detach(), pixelLoss: l.pixel.detach(), featureLoss: l.feature.detach() }, samples: batchSize };
      },
      evaluateEpoch: async (s) => {
        const valLoss = await validationLoss();
        if (sampleEvery > 0 && (s.epoch % sampleEvery === 0 || s.epoch === encoderEpochs)) await writeReconstructionGrid(s.epoch);
        const record: AnomalyEpochRecord = {
          phase: 'encoder',
          epoch: s.epoch,
          loss: s.losses.loss,
          pixelLoss: s.losses.pixelLoss,
          featureLoss: s.losses.featureLoss,
          valLoss,
          seconds: s.seconds,
          imagesPerSecond: s.samplesPerSecond,
        };
        return { record, score: s.epoch };
      },
      checkpoint: { dir: join(opts.out, 'checkpoint', 'encoder'), resume: opts.resume, options: { ...dataOptions, stage: 'encoder', gan, ganEpochs, kappa, nef: config.nef } },
      divergedHint: 'lower the encoder learning rate (--lr-e)',
      onEpochStart: (e, b) => opts.onEpochStart?.('encoder', e, b),
      onBatch: (p) => opts.onBatch?.('encoder', p),
      onEpochEnd: (r) => opts.onEpochEnd?.(r),
      log,
    });
  } finally {
    for (const p of frozen) p.requiresGrad = true;
  }
  history.push(...encLoop.history);
  optE.dispose();
  E.eval();

  async function validationLoss(): Promise<number> {
    let sum = 0;
    for (let s = 0; s < 256; s += 64) {
      const x = valPatches.subarray(s * P * P, (s + 64) * P * P);
      const t = engine.tidy(() => noGrad(() => {
        const wasE = E.training;
        E.eval();
        try {
          return encoderLoss(engine.tensor(toModelRange(x), [64, 1, P, P])).loss;
        } finally {
          E.train(wasE);
        }
      }));
      sum += await t.item();
      t.dispose();
    }
    return sum / 4;
  }

  async function writeReconstructionGrid(epoch: number): Promise<void> {
    const x = valPatches.subarray(0, 32 * P * P);
    const r = await patchResiduals(nets, x, P);
    const pairs = new Float32Array(64 * P * P);
    // Rows of 8: a row of real patches, then the row of their reconstructions.
    for (let row = 0; row < 4; row++) {
      pairs.set(x.subarray(row * 8 * P * P, (row + 1) * 8 * P * P), row * 16 * P * P);
      pairs.set(r.reconstruction.subarray(row * 8 * P * P, (row + 1) * 8 * P * P), (row * 16 + 8) * P * P);
    }
    await writeImageGrid(join(samplesDir, `encoder-epoch-${String(epoch).padStart(4, '0')}.png`), pairs, P, 8);
  }

  // ---- stage 3b: the feature memory, from training images kept apart from the edge profile's
  const withMemory = (opts.memories?.length ?? 0) > 0;
  const memorySplit = withMemory ? memoryAndReference(good.split.train, EDGE_REFERENCE_IMAGES) : { memory: [], reference: good.split.train };
  for (const [k, o] of (opts.memories ?? []).entries())
    (nets.memories ??= []).push(await buildFeatureMemory(o, memorySplit.memory.map((i) => good.images[i]), seed, engine, log, k));

  // ---- stage 4: calibration and threshold on the validation good images
  const fixed = opts.sigma !== undefined || opts.topK !== undefined || opts.featureWeight !== undefined || opts.mirror !== undefined;
  const candidates = fixed
    ? [{ sigma: opts.sigma ?? 2, topK: opts.topK ?? 16, featureWeight: opts.featureWeight ?? 1, mirror: opts.mirror ?? false }]
    : (opts.scoringCandidates ?? defaultScoringCandidates(nets.memories?.length ?? 0, opts.memoryMixes));
  const cal = await calibrate(nets, config, good.split.val.map((i) => good.originals[i]), {
    falseAlarmRate: rate,
    reference: memorySplit.reference.map((i) => good.originals[i]),
    candidates,
    seed,
    defects: opts.defects,
    log,
  });
  const { scoring, threshold, validationScores } = cal;
  log(`threshold ${threshold.toFixed(4)} at ${(rate * 100).toFixed(1)} % false alarms on ${valImages.length} validation good images`);

  const trainSeconds = history.reduce((n, h) => n + h.seconds, 0);
  const patches = history.reduce((n, h) => n + h.imagesPerSecond * h.seconds, 0);
  const files = (idx: number[]) => idx.map((i) => good.items[i].rel);
  const meta = {
    config,
    ...(nets.memories?.length ? { memories: nets.memories.map((m) => ({ ...m.config, images: files(memorySplit.memory) })) } : {}),
    scoring,
    threshold: { value: threshold, falseAlarmRate: rate, validationImages: valImages.length },
    data: {
      root: opts.data,
      goodFolders: good.goodFolders,
      splitSeed: seed,
      testFraction: opts.testFraction ?? 0.2,
      valFraction: opts.valFraction ?? 0.2,
      files: { train: files(good.split.train), val: files(good.split.val), test: files(good.split.test) },
    },
    training: {
      command: opts.command,
      seed,
      ganEpochs,
      encoderEpochs,
      batchSize,
      patchesPerImage,
      gridShare,
      lrG: opts.lrG ?? 2e-4,
      lrD: opts.lrD ?? 2e-4,
      lrE: opts.lrE ?? 2e-4,
      beta1: opts.beta1 ?? 0.5,
      kappa,
      diffAugment: policy,
      adapter: engine.describe(),
      trainSeconds,
      patchesPerSecond: trainSeconds > 0 ? patches / trainSeconds : 0,
      validationScores,
      scoringSelection: cal.selection,
      scoringSelectionDefects: cal.selectionDefects,
      skipped: good.skipped,
      history,
    },
  };
  await saveAnomalyDir(opts.out, nets, meta);
  G.dispose();
  D.dispose();
  E.dispose();
  nets.memories?.forEach((m) => m.dispose());
  const result: AnomalyTrainResult = {
    modelDir: opts.out,
    history,
    threshold,
    scoring,
    validationScores,
    selection: cal.selection,
    counts: { train: good.split.train.length, val: good.split.val.length, test: good.split.test.length },
    seconds: (Date.now() - started) / 1000,
    trainSeconds,
    patchesPerSecond: meta.training.patchesPerSecond,
  };
  writeFileAtomic(join(opts.out, 'history.json'), [new TextEncoder().encode(JSON.stringify(result, null, 2) + '\n')]);
  return result;
}
