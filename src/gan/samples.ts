// Generating images from a trained generator: batches on the GPU, pixels back in [0, 1], a PNG
// contact sheet (sample grid) and per-class PNG folders that `wgsl-nn train` reads as a dataset.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { floatToU8, loadGray, u8ToFloat, writeGrayPng } from '../data/images.js';
import { WgslNnError } from '../gpu/errors.js';
import { inference, standingStatistics } from '../nn/modules.js';
import { mixSeed } from '../data/split.js';
import { Rng } from '../util/rng.js';
import { GeneratorClassSet, GeneratorMixture, type ImageGenerator } from './mixture.js';
import { type Generator, latentBatch, pixelRange } from './models.js';

export interface GenerateOptions {
  /** Images per GPU batch (default 64). */
  batchSize?: number;
  /**
   * The truncation trick (Brock et al. 2019, BigGAN): every noise component is redrawn until
   * |z_j| <= truncation, trading variety for typical, cleaner samples. Unset: plain N(0, 1).
   */
  truncation?: number;
}

/** A standard normal source, truncated to [-t, t] by redrawing when `truncation` is set. */
export function latentNoise(rng: Rng, truncation?: number): () => number {
  if (truncation === undefined) return () => rng.normal();
  // Below ~0.05 almost every draw is rejected: a mistake rather than a setting.
  if (!(truncation >= 0.05) || !Number.isFinite(truncation)) throw new RangeError(`truncation must be a number >= 0.05, got ${truncation}`);
  return () => {
    for (;;) {
      const v = rng.normal();
      if (Math.abs(v) <= truncation) return v;
    }
  };
}

/**
 * Images [n, S*S] in [0, 1] for the given class labels, from noise drawn with `rng`. From a mixture, image i
 * comes from member i mod M (members in order, each drawing its noise from `rng` in turn); from a class set,
 * the images of class k come from member k (classes in order, each member drawing from `rng` in turn).
 */
export async function generateImages(G: ImageGenerator, labels: ArrayLike<number>, rng: Rng, opts: GenerateOptions = {}): Promise<Float32Array> {
  if (G instanceof GeneratorMixture) return generateFromMixture(G, labels, rng, opts);
  if (G instanceof GeneratorClassSet) return generateFromClassSet(G, labels, rng, opts);
  const batchSize = opts.batchSize ?? 64;
  const noise = latentNoise(rng, opts.truncation);
  const c = G.config;
  const S = c.imageSize;
  const n = labels.length;
  const out = new Float32Array(n * S * S);
  const signed = pixelRange(c.arch) === 'signed';
  const e = G.parameters()[0].engine;
  for (let start = 0; start < n; start += batchSize) {
    const lab = Array.from({ length: Math.min(batchSize, n - start) }, (_, i) => labels[start + i]);
    const z = latentBatch(c, lab, noise);
    const x = e.tidy(() => inference(G, () => G.forward(e.tensor(z, [lab.length, G.inputDim]))));
    const v = (await x.toArray()) as Float32Array;
    x.dispose();
    for (let i = 0; i < v.length; i++) out[start * S * S + i] = signed ? (v[i] + 1) / 2 : v[i];
  }
  return out;
}

function generateFromMixture(G: GeneratorMixture, labels: ArrayLike<number>, rng: Rng, opts: GenerateOptions): Promise<Float32Array> {
  const M = G.members.length;
  const parts = G.members.map((member, m) => {
    const picked = Array.from({ length: Math.ceil((labels.length - m) / M) }, (_, j) => m + j * M);
    return { member, picked, labels: picked.map((i) => labels[i]) };
  });
  return generateInParts(labels.length, G.config.imageSize, parts, rng, opts);
}

function generateFromClassSet(G: GeneratorClassSet, labels: ArrayLike<number>, rng: Rng, opts: GenerateOptions): Promise<Float32Array> {
  const K = G.members.length;
  for (let i = 0; i < labels.length; i++)
    if (!Number.isInteger(labels[i]) || labels[i] < 0 || labels[i] >= K) throw new RangeError(`class label ${labels[i]} at ${i}: this class set makes classes 0..${K - 1}`);
  const parts = G.members.map((member, k) => {
    const picked = Array.from(labels, (l, i) => (l === k ? i : -1)).filter((i) => i >= 0);
    return { member, picked, labels: new Int32Array(picked.length) };
  });
  return generateInParts(labels.length, G.config.imageSize, parts, rng, opts);
}

/**
 * n images of size x size drawn in parts, in order, from the one `rng`: each part's generator makes the images
 * at its `picked` positions from its own `labels` (a part with no positions draws nothing).
 */
async function generateInParts(
  n: number,
  size: number,
  parts: { member: Generator; picked: number[]; labels: ArrayLike<number> }[],
  rng: Rng,
  opts: GenerateOptions,
): Promise<Float32Array> {
  const area = size * size;
  const out = new Float32Array(n * area);
  for (const { member, picked, labels } of parts) {
    if (!picked.length) continue;
    const images = await generateImages(member, labels, rng, opts);
    picked.forEach((i, j) => out.set(images.subarray(j * area, (j + 1) * area), i * area));
  }
  return out;
}

/**
 * Standing statistics for a generator (standingStatistics in src/nn/modules.ts): its BatchNorm running
 * statistics recomputed from `batches` batches of `batchSize` noise vectors drawn from `seed`, classes in turn (a
 * conditional generator sees every class equally); a mixture's or class set's members each in turn. For a generator that is an average of weights
 * (`gan train --ema`); without BatchNorm (the dense GAN) it changes nothing.
 */
export function recomputeGeneratorStatistics(G: ImageGenerator, batches: number, seed: number, batchSize = 64): void {
  if (G instanceof GeneratorMixture || G instanceof GeneratorClassSet) {
    for (const member of G.members) recomputeGeneratorStatistics(member, batches, seed, batchSize);
    return;
  }
  const c = G.config;
  const classes = Math.max(1, c.classes.length);
  // A noise stream of its own: derived from `seed`, so not the one the samples draw with that seed.
  const noise = latentNoise(new Rng(mixSeed(seed, 0x57a7)));
  const e = G.parameters()[0].engine;
  standingStatistics(G, batches, (pass) => {
    const labels = Array.from({ length: batchSize }, (_, i) => (pass * batchSize + i) % classes);
    e.tidy(() => G.forward(e.tensor(latentBatch(c, labels, noise), [batchSize, G.inputDim]))).dispose();
  });
}

/** Noise for the fixed sample grid: `perClass` samples of every class, class by class (one row each when conditional). */
export function gridLabels(classes: number, perClass: number): Int32Array {
  return Int32Array.from({ length: classes * perClass }, (_, i) => Math.floor(i / perClass));
}

/**
 * Writes images ([n, S*S] in [0,1]) as one PNG grid of `cols` columns with a 2-pixel mid-gray
 * border between tiles.
 */
export async function writeImageGrid(file: string, images: Float32Array, size: number, cols: number): Promise<void> {
  const n = images.length / (size * size);
  if (!Number.isInteger(n) || n < 1) throw new WgslNnError(`writeImageGrid: ${images.length} values are not whole ${size}x${size} images`);
  const gap = 2;
  const rows = Math.ceil(n / cols);
  const W = cols * size + (cols + 1) * gap;
  const H = rows * size + (rows + 1) * gap;
  const sheet = new Float32Array(W * H).fill(0.5);
  for (let k = 0; k < n; k++) {
    const ox = gap + (k % cols) * (size + gap);
    const oy = gap + Math.floor(k / cols) * (size + gap);
    for (let y = 0; y < size; y++)
      for (let x = 0; x < size; x++) sheet[(oy + y) * W + ox + x] = images[k * size * size + y * size + x];
  }
  await writeGrayPng(file, sheet, W, H);
}

/**
 * A contact sheet of sample folders: the first `perRow` of each class's `perClass` files (as writeSampleFolders
 * lists them, class by class), one row per class, read back from the PNGs so the sheet shows what was written.
 */
export async function writeSampleSheet(file: string, files: string[], classes: number, perClass: number, size: number, perRow = 10): Promise<void> {
  if (files.length !== classes * perClass) throw new WgslNnError(`writeSampleSheet: ${files.length} files are not ${perClass} of each of ${classes} classes`);
  const cols = Math.min(perRow, perClass);
  const images = new Float32Array(classes * cols * size * size);
  for (let k = 0; k < classes; k++)
    for (let i = 0; i < cols; i++) {
      const img = await loadGray(files[k * perClass + i]);
      if (img.width !== size || img.height !== size) throw new WgslNnError(`writeSampleSheet: ${files[k * perClass + i]} is ${img.width}x${img.height}, not ${size}x${size}`);
      images.set(img.data, (k * cols + i) * size * size);
    }
  await writeImageGrid(file, images, size, cols);
}

/**
 * Decides which generated images of class `classIndex` to keep: images [count, S*S] in [0, 1] as they
 * will be written (8-bit), one boolean per image.
 */
export type SampleFilter = (images: Float32Array, count: number, classIndex: number) => Promise<ArrayLike<boolean>>;

export interface SampleFolderOptions extends GenerateOptions {
  /** Rejection sampling: only images the filter accepts are written (see classifierFilter). */
  filter?: SampleFilter;
  /** With a filter: give up on a class after drawing this many times `perClass` images (default 20). */
  maxDrawFactor?: number;
  /** Per class: how many of the images drawn the filter accepted (all without one; surplus included). */
  onClass?: (className: string, accepted: number, drawn: number) => void;
}

/**
 * Writes `perClass` generated PNGs of every class under out/<class>/<class>_00000.png: a
 * class-per-folder dataset (the layout `wgsl-nn train` reads). Returns the files written.
 */
export async function writeSampleFolders(G: ImageGenerator, out: string, perClass: number, seed: number, opts: SampleFolderOptions = {}): Promise<string[]> {
  if (!Number.isInteger(perClass) || perClass < 1) throw new WgslNnError(`--count must be a positive integer, got ${perClass}`);
  const maxDrawFactor = opts.maxDrawFactor ?? 20;
  if (!(maxDrawFactor >= 1)) throw new RangeError(`maxDrawFactor must be >= 1, got ${maxDrawFactor}`);
  const { classes, imageSize: S } = G.config;
  const area = S * S;
  const rng = new Rng(seed);
  const files: string[] = [];
  for (let k = 0; k < classes.length; k++) {
    const dir = join(out, classes[k]);
    mkdirSync(dir, { recursive: true });
    let written = 0;
    let drawn = 0;
    let accepted = 0;
    while (written < perClass) {
      if (drawn >= maxDrawFactor * perClass)
        throw new WgslNnError(`sample filter: only ${written} of ${perClass} images of class '${classes[k]}' accepted in ${drawn} draws; lower the filter's bar (e.g. --min-confidence) or the count`);
      // Without a filter one draw of exactly what is missing; with one, draws of 64-256 (the filter's batch).
      const count = opts.filter ? Math.min(256, Math.max(64, perClass - written)) : perClass - written;
      // Pixels as the 8-bit PNG holds them, so a filter judges exactly what is written.
      const imgs = u8ToFloat(floatToU8(await generateImages(G, new Int32Array(count).fill(k), rng, opts)));
      drawn += count;
      const keep = opts.filter ? await opts.filter(imgs, count, k) : null;
      for (let i = 0; i < count; i++) if (!keep || keep[i]) accepted++;
      for (let i = 0; i < count && written < perClass; i++) {
        if (keep && !keep[i]) continue;
        const file = join(dir, `${classes[k]}_${String(written).padStart(5, '0')}.png`);
        await writeGrayPng(file, imgs.subarray(i * area, (i + 1) * area), S, S);
        files.push(file);
        written++;
      }
    }
    opts.onClass?.(classes[k], accepted, drawn);
  }
  return files;
}
