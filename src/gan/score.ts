// `wgsl-nn gan score`: how close a GAN's images are to real ones, per class, on the penultimate-layer
// features of a trained classifier of this project (quality.ts), always beside the real-vs-real floor.
//
// At a few hundred images per class Fréchet distance is biased upwards by the sample size, so the
// generated set is compared at the size of the floor: the real images of a class are split into two
// disjoint halves A and B; the floor is FD(A, B); the GAN's number is FD(generated, B) with as many
// generated images as A has. A GAN indistinguishable from real data scores about the floor.
//
// Beside them, per class, how periodic the generated images are against the real ones (spectrum.ts: the
// power spectrum's excess on the grid of frequencies stride-2 upsampling leaves; ~1 for real images):
// a checkerboard or grid texture that the classifier's features may not weigh shows up there.
import { WgslNnError } from '../gpu/errors.js';
import { loadModelDir } from '../cnn/model-dir.js';
import { scanDataset, type ScannedDataset } from '../data/dataset.js';
import { loadGray, type GrayImage } from '../data/images.js';
import { stratifiedSplit } from '../data/split.js';
import { pixelHash, loadGray8 } from '../data/images.js';
import type { Engine } from '../gpu/engine.js';
import { Rng } from '../util/rng.js';
import { loadGanSampler, type GanSamplerMeta } from './mixture.js';
import {
  frechetDistance,
  kernelInceptionDistance,
  realFloor,
  selectRows,
  type FeatureMatrix,
  type KidResult,
} from './quality.js';
import { assignedTo } from './classifier-filter.js';
import { featuresOfInput, modelInput, predictInput } from './features.js';
import { generateImages } from './samples.js';
import { gridExcess, hasUpsamplingGrid, meanPowerSpectrum } from './spectrum.js';
import { resizeBilinear } from '../data/augment.js';

export interface ClassScore {
  className: string;
  /** Real images of the class; each half holds half of them. */
  realImages: number;
  halfSize: number;
  fd: number;
  floorFd: number;
  kid: KidResult;
  floorKid: KidResult;
  /**
   * GAN-test (Shmelkov et al., "How good is my GAN?", ECCV 2018): the share of the generated images
   * that the classifier assigns to their class, beside the same share of the class's real images (its
   * training images included unless the split is 'test'). Null when the classifier lacks the class.
   */
  classifierAgreement: number | null;
  realAgreement: number | null;
  /**
   * Periodic-artifact excess (spectrum.ts: geometric mean over the upsampling grid of frequencies) of the
   * generated images and of the class's real images resized to the GAN's size; ~1 means no periodic pattern.
   * Null for an image size that is not a multiple of 16 of at least 32 (the grid would have no off-grid neighbours).
   */
  periodicExcess: { generated: number; real: number } | null;
}

export interface GanScoreReport {
  model: string;
  classifier: string;
  data: string;
  /** 'all' images under data, or the 'test' split the GAN never saw. */
  split: 'all' | 'test';
  seed: number;
  perClass: ClassScore[];
  /** Means over the classes. */
  meanFd: number;
  meanFloorFd: number;
  /** Means of classifierAgreement / realAgreement over the classes the classifier has (null if none). */
  meanClassifierAgreement: number | null;
  meanRealAgreement: number | null;
  /** Means of periodicExcess over the classes (null where it is). */
  meanPeriodicExcess: { generated: number; real: number } | null;
}

export interface GanScoreOptions {
  model: string;
  data: string;
  /** A classifier model directory (e.g. models/neu) whose features are compared. */
  classifier: string;
  /** Use only the GAN's held-out test split of `data` (recomputed from the split recorded in the GAN's model.json). */
  testSplit?: boolean;
  seed?: number;
  kidSubsets?: number;
  engine?: Engine;
}

interface GanDataRecord {
  root?: string;
  splitSeed?: number;
  testFraction?: number;
  valFraction?: number;
}

/** The dataset items to score: everything, or the test split recorded by the GAN's trainer. */
async function realItems(ds: ScannedDataset, meta: GanSamplerMeta, testSplit: boolean): Promise<ScannedDataset['items']> {
  if (!testSplit) return ds.items;
  const d = meta.data as GanDataRecord | undefined;
  if (!d || d.splitSeed === undefined) throw new WgslNnError('--test-split: this GAN directory records no training split');
  // The same split as the trainer's: stratified, exact-duplicate groups by pixel hash, same seed and fractions.
  const hashes = await Promise.all(ds.items.map(async (it) => pixelHash(await loadGray8(it.path))));
  const split = stratifiedSplit(ds.items, ds.classes, { seed: d.splitSeed, test: d.testFraction ?? 0.2, val: d.valFraction ?? 0.2, groups: hashes });
  return split.test.map((i) => ds.items[i]);
}

export async function scoreGan(opts: GanScoreOptions): Promise<GanScoreReport> {
  const seed = opts.seed ?? 1;
  const { generator, meta } = loadGanSampler(opts.model, opts.engine);
  const { model: classifier, meta: cmeta } = loadModelDir(opts.classifier, opts.engine);
  try {
    const ds = await scanDataset(opts.data, 'multiclass');
    const missing = meta.classes.filter((c) => !ds.classes.includes(c));
    if (missing.length) throw new WgslNnError(`the GAN's classes ${missing.join(', ')} have no folder in ${opts.data} (folders: ${ds.classes.join(', ')})`);
    const items = await realItems(ds, meta, opts.testSplit ?? false);
    const fit = cmeta.preprocessing.resize;
    const rng = new Rng(seed);
    const kid = { subsets: opts.kidSubsets ?? 100, seed };
    const perClass: ClassScore[] = [];
    for (let k = 0; k < meta.classes.length; k++) {
      const name = meta.classes[k];
      const label = ds.classes.indexOf(name);
      const paths = items.filter((it) => it.label === label).map((it) => it.path);
      if (paths.length < 8) throw new WgslNnError(`class '${name}' has ${paths.length} real images in ${opts.data}; at least 8 are needed`);
      const real: GrayImage[] = await Promise.all(paths.map((p) => loadGray(p)));
      // Each set resized once, for both the features and GAN-test's predictions.
      const realInput = await modelInput(classifier, real, fit);
      const realFeat = await featuresOfInput(classifier, realInput);
      const floor = realFloor(realFeat, { seed, kid });
      const halfB = selectRows(realFeat, floor.halves.b);
      const S = generator.config.imageSize;
      const gen = await generateImages(generator, new Int32Array(floor.halfSize).fill(k), rng);
      const genImages: GrayImage[] = Array.from({ length: floor.halfSize }, (_, i) => ({ width: S, height: S, data: gen.subarray(i * S * S, (i + 1) * S * S) }));
      const genInput = await modelInput(classifier, genImages, fit);
      const genFeat: FeatureMatrix = await featuresOfInput(classifier, genInput);
      const target = cmeta.task === 'multiclass' ? cmeta.classes.indexOf(name) : -1;
      const agreement = async (input: Float32Array) => {
        if (target < 0) return null;
        const keep = assignedTo(await predictInput(classifier, input), cmeta.classes.length, target);
        return keep.filter(Boolean).length / keep.length;
      };
      perClass.push({
        className: name,
        realImages: paths.length,
        halfSize: floor.halfSize,
        fd: frechetDistance(genFeat, halfB),
        floorFd: floor.fd,
        kid: kernelInceptionDistance(genFeat, halfB, kid),
        floorKid: floor.kid,
        classifierAgreement: await agreement(genInput),
        realAgreement: await agreement(realInput),
        periodicExcess: hasUpsamplingGrid(S)
          ? {
              generated: gridExcess(meanPowerSpectrum(gen, floor.halfSize, S), S).geometricMean,
              real: gridExcess(meanPowerSpectrum(resizedTo(real, S), real.length, S), S).geometricMean,
            }
          : null,
      });
    }
    const mean = (f: (c: ClassScore) => number) => perClass.reduce((s, c) => s + f(c), 0) / perClass.length;
    const known = perClass.filter((c) => c.classifierAgreement !== null);
    const meanKnown = (f: (c: ClassScore) => number) => (known.length ? known.reduce((s, c) => s + f(c), 0) / known.length : null);
    return {
      model: opts.model,
      classifier: opts.classifier,
      data: opts.data,
      split: opts.testSplit ? 'test' : 'all',
      seed,
      perClass,
      meanFd: mean((c) => c.fd),
      meanFloorFd: mean((c) => c.floorFd),
      meanClassifierAgreement: meanKnown((c) => c.classifierAgreement!),
      meanRealAgreement: meanKnown((c) => c.realAgreement!),
      meanPeriodicExcess: perClass.every((c) => c.periodicExcess)
        ? { generated: mean((c) => c.periodicExcess!.generated), real: mean((c) => c.periodicExcess!.real) }
        : null,
    };
  } finally {
    generator.dispose();
    classifier.dispose();
  }
}

/** A plain-text table of a report. */
export function formatGanScore(r: GanScoreReport): string {
  const lines = [
    `Fréchet distance (FD) and KID on ${r.classifier} features; ${r.split === 'test' ? 'the test split the GAN never saw' : 'all images'} of ${r.data}.`,
    'Each class: real images split into halves A and B; floor = A vs B; GAN = as many generated images as A vs B.',
    '',
    'class               real  half      FD GAN   FD floor   FD ratio        KID GAN (mean ± std)     KID floor (mean ± std)',
  ];
  for (const c of r.perClass)
    lines.push(
      `${c.className.padEnd(18)} ${String(c.realImages).padStart(5)} ${String(c.halfSize).padStart(5)} ${c.fd.toFixed(1).padStart(10)} ${c.floorFd.toFixed(1).padStart(10)} ${(c.fd / c.floorFd).toFixed(2).padStart(10)}` +
        `   ${fmtKid(c.kid).padStart(24)}   ${fmtKid(c.floorKid).padStart(24)}`,
    );
  lines.push(`${'mean'.padEnd(30)} ${r.meanFd.toFixed(1).padStart(10)} ${r.meanFloorFd.toFixed(1).padStart(10)} ${(r.meanFd / r.meanFloorFd).toFixed(2).padStart(10)}`);
  if (r.meanClassifierAgreement !== null) {
    const pct = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(1)} %`);
    lines.push(
      '',
      `GAN-test: the share of images ${r.classifier} assigns to their own class (generated: the GAN's images above; real: the class's real images${r.split === 'test' ? '' : ', its training images included'}).`,
      '',
      'class               generated       real',
      ...r.perClass.map((c) => `${c.className.padEnd(18)} ${pct(c.classifierAgreement).padStart(10)} ${pct(c.realAgreement).padStart(10)}`),
      `${'mean'.padEnd(18)} ${pct(r.meanClassifierAgreement).padStart(10)} ${pct(r.meanRealAgreement).padStart(10)}`,
    );
  }
  if (r.meanPeriodicExcess) lines.push(
    '',
    'Periodic-artifact excess: the power spectrum on the grid of frequencies stride-2 upsampling leaves, over its neighbours (geometric mean; ~1 = no periodic pattern).',
    '',
    'class               generated       real',
    ...r.perClass.map((c) => `${c.className.padEnd(18)} ${c.periodicExcess!.generated.toFixed(2).padStart(10)} ${c.periodicExcess!.real.toFixed(2).padStart(10)}`),
    `${'mean'.padEnd(18)} ${r.meanPeriodicExcess.generated.toFixed(2).padStart(10)} ${r.meanPeriodicExcess.real.toFixed(2).padStart(10)}`,
  );
  return lines.join('\n');
}

/** Images resized (bilinear) to S x S, one after another. */
function resizedTo(images: GrayImage[], S: number): Float32Array {
  const out = new Float32Array(images.length * S * S);
  images.forEach((img, i) => resizeBilinear(img, S, out, i * S * S));
  return out;
}

function fmtKid(k: KidResult): string {
  return `${k.mean.toExponential(2)} ± ${k.std.toExponential(1)}`;
}
