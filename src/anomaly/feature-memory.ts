// A memory of defect-free surface features, and each pixel's distance to it (PatchCore-style; Roth et al.,
// "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022), as a third term of the anomaly map
// beside f-AnoGAN's two residuals (scorer.ts).
//
// Why: f-AnoGAN's residuals miss what its generator can reproduce (large uneven regions, faint cracks), and
// its discriminator's features, trained to tell real from generated patches, describe texture poorly. A
// classifier trained to tell surface defects apart has features made for this. The backbone is the first two
// conv blocks of one of this project's classifiers, by default models/neu (steel surfaces: another product
// and another dataset, never a magnetic tile; the role ImageNet plays for PatchCore), applied fully
// convolutionally to the whole working image:
//
//   f = ReLU(conv2(maxpool2(ReLU(conv1(z)))))     z = the working image standardised (mean 0, std 1)
//
// giving C-dimensional features on a grid of stride 2 (each sees 8 x 8 working pixels), then averaged over a
// `neighbourhood` x `neighbourhood` window of cells (PatchCore's local aggregation). With a third channel
// count the classifier's third block is used too, as PatchCore joins two depths of its backbone:
//
//   f3 = ReLU(conv3(maxpool2(f)))   (stride 4, each cell sees 18 x 18 working pixels)
//
// sampled bilinearly at the centres of f's cells and appended to f (C = c2 + c3): the deeper features
// see a larger area (uneven surfaces, long cracks), the shallower ones keep the small defects sharp. A 'deep'
// memory holds f3 alone, on its own stride-4 grid: a model can then weigh the depths as separate memories
// (each in units of its own normal level, scorer.ts) instead of letting the 128 deep dimensions dominate one
// concatenated distance. The memory is `size`
// such vectors drawn from the training good images (see `fill`). A cell's distance is the squared
// Euclidean distance to its nearest memory vector, computed on the GPU by one fused kernel
// (nearest.squaredDistance, src/kernels/nearest.ts) that never writes the [cells, memory] matrix; where
// the device runs its subgroup kernel, through an index of the memory that searches only the clusters
// that can hold a cell's nearest vector, with the same result (nearest-index.ts). The cell map is
// upsampled bilinearly to the working image.
import type { Engine } from '../gpu/engine.js';
import { readModelMetadata } from '../cnn/model-dir.js';
import { imageMeanStd } from '../cnn/model.js';
import { WgslNnError } from '../gpu/errors.js';
import { readModelWeights } from '../model-dir.js';
import { nn } from '../nn/index.js';
import type { StateDict } from '../nn/modules.js';
import { roundToHalf, toHalfBits } from '../nn/half.js';
import { noGrad, Tensor } from '../nn/tensor.js';
import { nearestSquaredDistance } from '../kernels/nearest.js';
import { mixSeed } from '../data/split.js';
import { Rng } from '../util/rng.js';
import { greedyCoreset } from './coreset.js';
import { NearestIndex } from './nearest-index.js';
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { resizeBilinear, type WorkImage } from './patches.js';

/** Stored in model.json (`memory`). */
export interface FeatureMemoryConfig {
  /** The classifier directory the backbone's weights were copied from (for the record). */
  backbone: string;
  /** Output channels of the backbone's conv layers: two, or three to append the third block's features. */
  channels: [number, number] | [number, number, number];
  /** Side of the window of cells averaged into a feature (odd; 1: none). */
  neighbourhood: number;
  /** Vectors in the memory. */
  size: number;
  /**
   * How the vectors were chosen among the training images' cells: 'random' (uniformly; the default, and
   * what a model without this field used) or 'coreset' (k-center greedy over a random pool of `pool`
   * cells, coreset.ts).
   */
  sampling?: MemorySampling;
  /** Candidate cells of the coreset selection. */
  pool?: number;
  /**
   * With three channel counts: hold the third block's features alone, on its own stride-4 grid, instead of
   * appending them to the second's (absent: appended).
   */
  deepOnly?: boolean;
  /**
   * The working image is reduced by this integer factor (the mean of each factor x factor block) before the
   * backbone, so each cell sees that many times more of the tile (absent: 1, the working image itself).
   */
  downscale?: number;
  /**
   * How the bank's vectors are stored: 'f16' rounds each value to half precision when the memory is filled
   * (so calibration computes with exactly what is saved) and writes the bank as F16, half the file; absent:
   * float32. Why: the bank is nearly all of a memory's file (16,384 x 128 floats = 8 MiB), and the model's
   * 20 MB budget caps how many memories it can hold; a feature is a mean of ReLU outputs, where 11
   * significant bits (relative error <= 2^-11) move a squared distance by about 1e-3 of itself.
   */
  precision?: MemoryPrecision;
}

export type MemoryPrecision = 'f32' | 'f16';
export const MEMORY_PRECISIONS: readonly MemoryPrecision[] = ['f32', 'f16'];

export type MemorySampling = 'random' | 'coreset';
export const MEMORY_SAMPLINGS: readonly MemorySampling[] = ['random', 'coreset'];
/** Default coreset pool, in memory sizes: the pool's cells are each compared with every pick. */
export const DEFAULT_POOL_FACTOR = 8;
/** Dimensions the coreset selection measures distances in (a random projection of the features). */
const CORESET_PROJECTION = 16;

export const DEFAULT_MEMORY_SIZE = 16384;
export const DEFAULT_NEIGHBOURHOOD = 3;
/**
 * The smallest image side the backbone takes: two valid 3x3 convolutions around a 2x2 max-pool need 8
 * pixels; the third block (another max-pool and 3x3 convolution) needs 3 cells after its pool: 18.
 */
const minSide = (layers: number) => (layers === 3 ? 18 : 8);

/** Where cell i of the stride-2 grid lies on the third block's grid: its window is cells 2j .. 2j + 5, centred at 2j + 2.5. */
const deepCoordinate = (i: number) => (i - 2.5) / 2;

function padToMinSide(img: Pick<WorkImage, 'width' | 'height' | 'data'>, side: number): Pick<WorkImage, 'width' | 'height' | 'data'> {
  const width = Math.max(side, img.width);
  const height = Math.max(side, img.height);
  const data = new Float32Array(width * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) data[y * width + x] = img.data[Math.min(y, img.height - 1) * img.width + Math.min(x, img.width - 1)];
  return { width, height, data };
}

export class FeatureMemory extends nn.Module {
  readonly backbone: nn.Sequential;
  /** The third block (max-pool, conv, ReLU) on the backbone's output, for three channel counts. */
  readonly deep: nn.Sequential | null;
  readonly bank: Tensor;

  /** As given, with a coreset's pool defaulted (DEFAULT_POOL_FACTOR x size) so that model.json records the pool used. */
  readonly config: FeatureMemoryConfig;

  /**
   * Search through a NearestIndex where the device allows (default); false: the full search always (the
   * same distances; for comparisons). Read at each search.
   */
  useIndex = true;
  /**
   * The index of the bank it was built from (rebuilt when the bank is replaced: fill, loadStateDict), shared by
   * concurrent searches; `built` once the build has finished (so that dispose releases it at once).
   */
  private index: { of: DeviceTensor; index: Promise<NearestIndex>; built?: NearestIndex } | null = null;

  constructor(config: FeatureMemoryConfig, engine: Engine) {
    super();
    this.config = config.sampling === 'coreset' ? { ...config, pool: config.pool ?? DEFAULT_POOL_FACTOR * config.size } : config;
    const [c1, c2, c3] = config.channels;
    if (![2, 3].includes(config.channels.length) || !config.channels.every((c) => Number.isInteger(c) && c >= 1))
      throw new WgslNnError(`memory channels must be two or three positive integers, got [${config.channels.join(', ')}]`);
    if (!(Number.isInteger(config.neighbourhood) && config.neighbourhood >= 1 && config.neighbourhood % 2 === 1))
      throw new WgslNnError(`memory neighbourhood must be an odd positive integer, got ${config.neighbourhood}`);
    if (!(Number.isInteger(config.size) && config.size >= 1)) throw new WgslNnError(`memory size must be a positive integer, got ${config.size}`);
    if (config.sampling !== undefined && !MEMORY_SAMPLINGS.includes(config.sampling))
      throw new WgslNnError(`memory sampling must be one of ${MEMORY_SAMPLINGS.join(', ')}, got '${config.sampling}'`);
    if (config.pool !== undefined && !(Number.isInteger(config.pool) && config.pool >= 1)) throw new WgslNnError(`memory pool must be a positive integer, got ${config.pool}`);
    if (config.deepOnly && c3 === undefined) throw new WgslNnError('a memory of the third block alone (deepOnly) needs three channel counts');
    if (config.downscale !== undefined && !(Number.isInteger(config.downscale) && config.downscale >= 1))
      throw new WgslNnError(`memory downscale must be a positive integer, got ${config.downscale}`);
    if (config.precision !== undefined && !MEMORY_PRECISIONS.includes(config.precision))
      throw new WgslNnError(`memory precision must be one of ${MEMORY_PRECISIONS.join(', ')}, got '${config.precision}'`);
    const o = { engine };
    // The same layer indices as DefectClassifier.net (src/cnn/model.ts), so its weights load by name.
    this.backbone = new nn.Sequential(new nn.Conv2d(1, c1, 3, o), new nn.ReLU(), new nn.MaxPool2d(2), new nn.Conv2d(c1, c2, 3, o), new nn.ReLU());
    this.registerModule('backbone', this.backbone);
    this.deep = c3 === undefined ? null : new nn.Sequential(new nn.MaxPool2d(2), new nn.Conv2d(c2, c3, 3, o), new nn.ReLU());
    if (this.deep) this.registerModule('deep', this.deep);
    this.bank = this.registerBuffer('bank', new Tensor(engine.fromArray(new Float32Array(config.size * this.channels), [config.size, this.channels]), { track: false }));
  }

  /** The backbone and, where not the default, which block and image scale: for logs. */
  get description(): string {
    const notes = [...(this.config.deepOnly ? ['third block alone'] : []), ...((this.config.downscale ?? 1) > 1 ? [`image reduced ${this.config.downscale}x`] : [])];
    return `${this.config.backbone}${notes.length ? ` (${notes.join(', ')})` : ''}`;
  }

  /** Features per cell (and per memory vector). */
  get channels(): number {
    const [, c2, c3] = this.config.channels;
    return this.config.deepOnly ? c3! : c2 + (c3 ?? 0);
  }

  /**
   * The backbone from a classifier's weights (its model.safetensors: the state of DefectClassifier.net,
   * whose layers 0, 3 and 6 are the three convolutions), with an empty memory of `size` vectors; `layers`
   * 3 also takes the third convolution and appends its features, 'deep' keeps its features alone.
   */
  static fromClassifier(classifier: StateDict, config: Omit<FeatureMemoryConfig, 'channels' | 'deepOnly'>, engine: Engine, layers: MemoryLayers = 2): FeatureMemory {
    const w1 = classifier['0.weight'];
    const w2 = classifier['3.weight'];
    const w3 = classifier['6.weight'];
    const ok = (w: StateDict[string] | undefined, inC: number) => w && w.shape.length === 4 && w.shape[1] === inC && w.shape[2] === 3 && w.shape[3] === 3;
    if (!ok(w1, 1) || !ok(w2, w1.shape[0]) || !classifier['0.bias'] || !classifier['3.bias'])
      throw new WgslNnError(`${config.backbone} is not a classifier of this project (3x3 convolutions '0' and '3' on grayscale input): it cannot be the feature memory's backbone`);
    const third = layers !== 2;
    if (third && (!ok(w3, w2.shape[0]) || !classifier['6.bias']))
      throw new WgslNnError(`${config.backbone} has no third 3x3 convolution '6' on the second's ${w2.shape[0]} channels: it cannot give the third block's features`);
    const channels: FeatureMemoryConfig['channels'] = third ? [w1.shape[0], w2.shape[0], w3.shape[0]] : [w1.shape[0], w2.shape[0]];
    const m = new FeatureMemory({ ...config, channels, ...(layers === 'deep' ? { deepOnly: true } : {}) }, engine);
    m.backbone.loadStateDict({ '0.weight': w1, '0.bias': classifier['0.bias'], '3.weight': w2, '3.bias': classifier['3.bias'] });
    m.deep?.loadStateDict({ '1.weight': w3, '1.bias': classifier['6.bias'] });
    return m;
  }

  /**
   * The features of a working image: [cells, C] row-major (cell = y * w + x) on the h x w grid (stride 2;
   * stride 4 for a deepOnly memory), each the mean over its neighbourhood window (clipped at the grid's edges).
   */
  async features(img: Pick<WorkImage, 'width' | 'height' | 'data'>): Promise<{ h: number; w: number; data: Float32Array }> {
    if ((this.config.downscale ?? 1) > 1) img = reduceByBlocks(img, this.config.downscale!);
    // An image narrower than the backbone's field is padded by repeating its border (as the patches of
    // scorer.ts are), so a tiny image is scored rather than refused.
    const side = minSide(this.config.channels.length);
    if (img.width < side || img.height < side) img = padToMinSide(img, side);
    const e = this.bank.engine;
    // Standardised as the classifier standardises its inputs per image.
    const { mean, std } = imageMeanStd(img.data);
    const z = img.data.map((v) => (v - mean) / std);
    const maps = noGrad(() =>
      e.tidy(() => {
        const f = this.forward(e.tensor(z, [1, 1, img.height, img.width]));
        if (!this.deep) return [f];
        const f3 = this.deep.forward(f);
        return this.config.deepOnly ? [f3] : [f, f3];
      }),
    );
    const [, , h, w] = maps[0].shape;
    const C = this.channels;
    let raw: Float32Array;
    try {
      const [f2, f3] = (await Promise.all(maps.map((t) => t.toArray()))) as Float32Array[];
      raw = f3 ? appendDeep(f2, maps[0].shape[1], h, w, f3, maps[1].shape[1], maps[1].shape[2], maps[1].shape[3]) : f2;
    } finally {
      maps.forEach((t) => t.dispose());
    }
    const r = (this.config.neighbourhood - 1) / 2;
    const out = new Float32Array(h * w * C);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const y0 = Math.max(0, y - r);
        const y1 = Math.min(h - 1, y + r);
        const x0 = Math.max(0, x - r);
        const x1 = Math.min(w - 1, x + r);
        const inv = 1 / ((y1 - y0 + 1) * (x1 - x0 + 1));
        const o = (y * w + x) * C;
        for (let c = 0; c < C; c++) {
          let s = 0;
          for (let yy = y0; yy <= y1; yy++) for (let xx = x0; xx <= x1; xx++) s += raw[(c * h + yy) * w + xx];
          out[o + c] = s * inv;
        }
      }
    return { h, w, data: out };
  }

  /**
   * Fills the memory with `size` feature vectors from the cells of `images`: drawn uniformly ('random'),
   * or picked by k-center greedy from a uniform pool of `pool` cells ('coreset').
   */
  async fill(images: readonly WorkImage[], rng: Rng): Promise<void> {
    if (images.length === 0) throw new WgslNnError('feature memory: no images to fill it from');
    const C = this.channels;
    const feats: { h: number; w: number; data: Float32Array }[] = [];
    for (const im of images) feats.push(await this.features(im));
    const total = feats.reduce((a, f) => a + f.h * f.w, 0);
    const size = this.config.size;
    // Without replacement while there are enough cells (a small training set repeats vectors). A cell
    // index counts through the images in order.
    const order = rng.shuffle(Array.from({ length: total }, (_, i) => i));
    const vectorOf = (index: number) => {
      let cell = order[index % total];
      let img = 0;
      while (cell >= feats[img].h * feats[img].w) {
        cell -= feats[img].h * feats[img].w;
        img++;
      }
      return feats[img].data.subarray(cell * C, (cell + 1) * C);
    };
    let chosen: ArrayLike<number> = Array.from({ length: size }, (_, i) => i);
    if (this.config.sampling === 'coreset') {
      const poolSize = Math.min(total, this.config.pool!);
      const pool = new Float32Array(poolSize * C);
      for (let i = 0; i < poolSize; i++) pool.set(vectorOf(i), i * C);
      // The pool is in random order already, so its first cell is a random first pick.
      chosen = greedyCoreset(pool, C, size, { first: 0, projectTo: CORESET_PROJECTION, rng });
    }
    const bank = new Float32Array(size * C);
    for (let i = 0; i < size; i++) bank.set(vectorOf(chosen[i]), i * C);
    this.bank.setValue(this.bank.engine.fromArray(this.halfPrecision ? roundToHalf(bank) : bank, [size, C]));
  }

  /** A copy of this memory (backbone and bank) stored at `precision`; to half precision the bank is rounded. This memory is left as it is. */
  async withPrecision(precision: MemoryPrecision): Promise<FeatureMemory> {
    const { precision: _current, ...config } = this.config;
    const copy = new FeatureMemory(precision === 'f16' ? { ...config, precision } : config, this.bank.engine);
    try {
      copy.loadStateDict(await this.stateDict());
    } catch (e) {
      copy.dispose();
      throw e;
    }
    copy.useIndex = this.useIndex;
    copy.train(this.training);
    return copy;
  }

  private get halfPrecision(): boolean {
    return this.config.precision === 'f16';
  }

  /** As nn.Module's, with the bank as F16 half patterns at half precision (exactly its values: fill rounded them). */
  override async stateDict(): Promise<StateDict> {
    const state = await super.stateDict();
    if (this.halfPrecision) state.bank = { ...state.bank, dtype: 'F16', data: toHalfBits(state.bank.data as Float32Array) };
    return state;
  }

  /** As nn.Module's; a float32 bank loaded at half precision is rounded as fill() rounds, so it computes as its saved copy will. */
  override loadStateDict(state: StateDict, strict = true): void {
    const bank = state.bank;
    if (this.halfPrecision && bank?.dtype === 'F32') state = { ...state, bank: { ...bank, data: roundToHalf(bank.data as Float32Array) } };
    super.loadStateDict(state, strict);
  }

  /** The backbone's feature map [n, C, h, w] of standardised images [n, 1, H, W]. */
  forward(x: Tensor): Tensor {
    return this.backbone.forward(x);
  }

  /**
   * Squared distance of each feature [n, C] to its nearest memory vector. With the grid (h x w cells,
   * row-major, n = h * w) and the index available, the search goes through the index, the cells in 4 x 4
   * tiles (neighbours make its blocks); otherwise one fused kernel over the whole memory (src/kernels/nearest.ts).
   */
  async nearestDistances(features: Float32Array, grid?: { h: number; w: number }): Promise<Float32Array> {
    const C = this.channels;
    const e = this.bank.engine;
    if (grid && this.searchesIndex) {
      const index = await this.searchIndex();
      const order = tileOrder(grid.h, grid.w, 4);
      const tiled = new Float32Array(features.length);
      order.forEach((cell, i) => tiled.set(features.subarray(cell * C, (cell + 1) * C), i * C));
      const d = await index.search(tiled);
      const out = new Float32Array(d.length);
      order.forEach((cell, i) => (out[cell] = d[i]));
      return out;
    }
    const q = e.fromArray(features, [features.length / C, C]);
    try {
      const d = nearestSquaredDistance(q, this.bank.value);
      try {
        return (await d.toArray()) as Float32Array;
      } finally {
        d.dispose();
      }
    } finally {
      q.dispose();
    }
  }

  /** Builds the search index now (where it is used) rather than at the first search: a loaded model's first image is then not slower. */
  async prepareSearch(): Promise<void> {
    if (this.searchesIndex) await this.searchIndex();
  }

  /** Whether searches go through the index: wanted (useIndex) and the device runs its kernel for these features. */
  private get searchesIndex(): boolean {
    return this.useIndex && NearestIndex.available(this.bank.engine, this.channels);
  }

  /** The index of the current bank, built at first use (k-means steps on a sample of the bank). */
  private searchIndex(): Promise<NearestIndex> {
    const bank = this.bank.value;
    if (this.index?.of !== bank) {
      this.releaseIndex();
      const entry: NonNullable<FeatureMemory['index']> = {
        of: bank,
        index: (async () => NearestIndex.build(bank.engine, (await bank.toArray()) as Float32Array, this.channels, { seed: 1 }))(),
      };
      this.index = entry;
      entry.index.then(
        (built) => {
          // Released meanwhile (dispose, another bank): release it too; else keep it for a synchronous dispose.
          if (this.index === entry) entry.built = built;
          else {
            try {
              built.dispose();
            } catch {
              // The engine is gone (the detector was disposed before the build finished): nothing to release.
            }
          }
        },
        // A failed build is not kept: the next search tries again (the search that waited on it gets the error).
        () => {
          if (this.index === entry) this.index = null;
        },
      );
    }
    return this.index.index;
  }

  /** Releases the index (at once if built; when its build finishes otherwise). */
  private releaseIndex(): void {
    this.index?.built?.dispose();
    this.index = null;
  }

  override dispose(): void {
    this.releaseIndex();
    super.dispose();
  }

  /** The distance map of a working image, at its working resolution (a padded image's cells are spread over the whole image). */
  async distanceMap(img: Pick<WorkImage, 'width' | 'height' | 'data'>): Promise<Float32Array> {
    const f = await this.features(img);
    const d = await this.nearestDistances(f.data, f);
    return resizeBilinear(d, f.w, f.h, img.width, img.height);
  }
}

/**
 * The image reduced by an integer factor k: each output pixel the mean of a k x k block (a last partial block
 * the mean of what it holds), so an image of at least one pixel stays at least one.
 */
export function reduceByBlocks(img: Pick<WorkImage, 'width' | 'height' | 'data'>, k: number): Pick<WorkImage, 'width' | 'height' | 'data'> {
  const width = Math.ceil(img.width / k);
  const height = Math.ceil(img.height / k);
  const data = new Float32Array(width * height);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      let sum = 0;
      let n = 0;
      for (let yy = y * k; yy < Math.min((y + 1) * k, img.height); yy++)
        for (let xx = x * k; xx < Math.min((x + 1) * k, img.width); xx++) {
          sum += img.data[yy * img.width + xx];
          n++;
        }
      data[y * width + x] = sum / n;
    }
  return { width, height, data };
}

/** The cells of an h x w grid (row-major indices), tile by tile of t x t cells (row-major tiles, clipped at the edges). */
export function tileOrder(h: number, w: number, t: number): Int32Array {
  const out = new Int32Array(h * w);
  let i = 0;
  for (let ty = 0; ty < h; ty += t)
    for (let tx = 0; tx < w; tx += t)
      for (let y = ty; y < Math.min(h, ty + t); y++) for (let x = tx; x < Math.min(w, tx + t); x++) out[i++] = y * w + x;
  return out;
}

/**
 * The stride-2 features f2 [c2, h, w] with the third block's f3 [c3, h3, w3] appended per cell: [c2 + c3, h, w],
 * f3 sampled bilinearly at each cell's centre (deepCoordinate), clamped at the edges.
 */
function appendDeep(f2: Float32Array, c2: number, h: number, w: number, f3: Float32Array, c3: number, h3: number, w3: number): Float32Array {
  const out = new Float32Array((c2 + c3) * h * w);
  out.set(f2);
  const axis = (i: number, n: number) => {
    const t = Math.min(Math.max(deepCoordinate(i), 0), n - 1);
    const i0 = Math.min(Math.floor(t), n - 1);
    const i1 = Math.min(i0 + 1, n - 1);
    return { i0, i1, f: t - i0 };
  };
  const ys = Array.from({ length: h }, (_, y) => axis(y, h3));
  const xs = Array.from({ length: w }, (_, x) => axis(x, w3));
  for (let c = 0; c < c3; c++) {
    const plane = f3.subarray(c * h3 * w3, (c + 1) * h3 * w3);
    const o = (c2 + c) * h * w;
    for (let y = 0; y < h; y++) {
      const { i0: y0, i1: y1, f: fy } = ys[y];
      for (let x = 0; x < w; x++) {
        const { i0: x0, i1: x1, f: fx } = xs[x];
        const top = plane[y0 * w3 + x0] * (1 - fx) + plane[y0 * w3 + x1] * fx;
        const bottom = plane[y1 * w3 + x0] * (1 - fx) + plane[y1 * w3 + x1] * fx;
        out[o + y * w + x] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return out;
}

/** Which conv blocks' features a memory holds: the first two (2), the third's appended (3), the third's alone ('deep'). */
export type MemoryLayers = 2 | 3 | 'deep';

export interface MemoryOptions {
  /** A classifier model directory of this project (default models/neu). */
  backbone: string;
  /** Conv blocks of the backbone whose features are used (default 2). */
  layers?: MemoryLayers;
  /** Reduce the working image by this factor before the backbone (FeatureMemoryConfig.downscale; default 1). */
  downscale?: number;
  size?: number;
  neighbourhood?: number;
  sampling?: MemorySampling;
  pool?: number;
  /** How the bank is stored (FeatureMemoryConfig.precision; default f32). */
  precision?: MemoryPrecision;
}

/**
 * Builds a feature memory on `backbone`'s convolutions and fills it from `images` (the training good
 * images it is given), drawing its vectors with a generator derived from `seed` and the memory's `index`
 * among the model's memories; logs what it built.
 */
export async function buildFeatureMemory(
  opts: MemoryOptions,
  images: readonly WorkImage[],
  seed: number,
  engine: Engine,
  log?: (line: string) => void,
  index = 0,
): Promise<FeatureMemory> {
  readModelMetadata(opts.backbone); // a clear error for a missing or non-classifier directory
  const memory = FeatureMemory.fromClassifier(
    readModelWeights(opts.backbone, 'model'),
    {
      backbone: opts.backbone,
      size: opts.size ?? DEFAULT_MEMORY_SIZE,
      neighbourhood: opts.neighbourhood ?? DEFAULT_NEIGHBOURHOOD,
      ...(opts.sampling === 'coreset' ? { sampling: opts.sampling, pool: opts.pool } : {}),
      ...((opts.downscale ?? 1) > 1 ? { downscale: opts.downscale } : {}),
      ...(opts.precision === 'f16' ? { precision: opts.precision } : {}),
    },
    engine,
    opts.layers ?? 2,
  );
  try {
    // The first memory's draw is the one a single-memory model has always made.
    await memory.fill(images, new Rng(index === 0 ? mixSeed(seed, 0x3e3) : mixSeed(seed, 0x3e3, index)));
  } catch (e) {
    memory.dispose();
    throw e;
  }
  const how = memory.config.sampling === 'coreset' ? `greedy coreset of a pool of ${memory.config.pool} cells` : 'random cells';
  log?.(`feature memory: ${memory.config.size} vectors of ${memory.channels} (${how}) from ${images.length} training images (backbone ${memory.description})`);
  return memory;
}

/**
 * Which training images fill the memory and which fit the edge profile (calibrate.ts): disjoint, since an
 * image whose own features are in the memory has near-zero distances and would understate the normal
 * level. The edge profile keeps its usual images (every k-th, at most `referenceMax`) when at least half
 * of the training images are left for the memory; otherwise (few images) the two take alternate images.
 */
export function memoryAndReference<T>(train: readonly T[], referenceMax: number): { memory: T[]; reference: T[] } {
  const k = Math.max(1, Math.ceil(train.length / referenceMax));
  const isReference = (i: number) => (train.length - Math.ceil(train.length / k) >= train.length / 2 ? i % k === 0 : i % 2 === 1);
  return { memory: train.filter((_, i) => !isReference(i)), reference: train.filter((_, i) => isReference(i)) };
}
