// Generated images mixed into classifier training (`wgsl-nn train --augment-with <gan dir>`).
//
// The GAN's classes are matched to the dataset's by name (a class the GAN does not know gets no
// samples). For each class k, round(ratio * real training images of k) samples are generated once,
// at the start of training, from a fixed seed, and appended after the real images of the data source.
// Two ways to draw them into batches:
//   pool      the samples join the training set: an epoch visits every real and every generated image;
//   balanced  each epoch visits every real image once and as many generated images, interleaved so
//             every batch is half real, half generated (real images are not drowned at large ratios).
// Validation and test stay real.
import type { CachedImage, ImageSource } from '../data/cache.js';
import { MemorySource } from '../data/cache.js';
import { epochOrder } from '../data/batch.js';
import { resizeBilinear } from '../data/augment.js';
import { mixSeed } from '../data/split.js';
import type { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import { loadGanSampler } from '../gan/mixture.js';
import { generateImages } from '../gan/samples.js';
import { Rng } from '../util/rng.js';

export type SyntheticSampling = 'pool' | 'balanced';

export interface SyntheticMixOptions {
  ganDir: string;
  /** Generated images per real training image of the same class (default 1). */
  ratio?: number;
  sampling?: SyntheticSampling;
  seed: number;
  engine?: Engine;
}

export interface SyntheticMix {
  /** Real images first (same indices as before), then the generated ones. */
  source: ImageSource;
  labels: Int32Array;
  /** Indices of the generated images in `source`. */
  synthetic: number[];
  /** Training order of an epoch: real training indices plus generated ones, per the sampling rule. */
  epochIndices: (epoch: number) => { indices: number[]; shuffle: boolean };
  /** Generated images per class name. */
  perClass: Record<string, number>;
}

/** Real images followed by in-memory generated ones. */
class ConcatSource implements ImageSource {
  constructor(
    private readonly real: ImageSource,
    private readonly generated: MemorySource,
  ) {}
  get size(): number {
    return this.real.size;
  }
  get length(): number {
    return this.real.length + this.generated.length;
  }
  get(i: number): CachedImage | Promise<CachedImage> {
    return i < this.real.length ? this.real.get(i) : this.generated.get(i - this.real.length);
  }
}

export async function mixGeneratedImages(
  real: ImageSource,
  labels: Int32Array,
  classes: readonly string[],
  train: readonly number[],
  opts: SyntheticMixOptions,
): Promise<SyntheticMix> {
  const ratio = opts.ratio ?? 1;
  if (!(ratio > 0) || !Number.isFinite(ratio)) throw new WgslNnError(`--synthetic-ratio must be a positive number, got ${ratio}`);
  const sampling = opts.sampling ?? 'pool';
  const { generator, meta } = loadGanSampler(opts.ganDir, opts.engine);
  const shared = meta.classes.filter((c) => classes.includes(c));
  if (!shared.length)
    throw new WgslNnError(`--augment-with ${opts.ganDir}: the GAN's classes (${meta.classes.join(', ')}) share none with the dataset's (${classes.join(', ')})`);
  const S = real.size;
  const Sg = generator.config.imageSize;
  const images: Float32Array[] = [];
  const synLabels: number[] = [];
  const perClass: Record<string, number> = {};
  const rng = new Rng(mixSeed(opts.seed, 0x6a4));
  try {
    for (const name of shared) {
      const k = classes.indexOf(name);
      const count = Math.round(ratio * train.filter((i) => labels[i] === k).length);
      perClass[name] = count;
      if (!count) continue;
      const gen = await generateImages(generator, new Int32Array(count).fill(meta.classes.indexOf(name)), rng);
      for (let i = 0; i < count; i++) {
        const img = gen.slice(i * Sg * Sg, (i + 1) * Sg * Sg);
        images.push(Sg === S ? img : resizeBilinear({ width: Sg, height: Sg, data: img }, S));
        synLabels.push(k);
      }
    }
  } finally {
    generator.dispose();
  }
  const generated = new MemorySource(S, images);
  const first = real.length;
  const synthetic = images.map((_, i) => first + i);
  const allLabels = new Int32Array(first + images.length);
  allLabels.set(labels.subarray(0, first));
  allLabels.set(synLabels, first);
  const epochIndices = (epoch: number): { indices: number[]; shuffle: boolean } => {
    if (sampling === 'pool' || !synthetic.length) return { indices: [...train, ...synthetic], shuffle: true };
    // balanced: alternate real and generated, each list shuffled per epoch, cycling the shorter one.
    const r = epochOrder(train, mixSeed(opts.seed, 1), epoch);
    const g = epochOrder(synthetic, mixSeed(opts.seed, 2), epoch);
    const out: number[] = [];
    for (let i = 0; i < r.length; i++) out.push(r[i], g[i % g.length]);
    return { indices: out, shuffle: false };
  };
  return { source: new ConcatSource(real, generated), labels: allLabels, synthetic, epochIndices, perClass };
}
