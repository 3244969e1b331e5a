// Generating images from a trained generator: batches on the GPU, pixels back in [0, 1], a PNG
// contact sheet (sample grid) and per-class PNG folders that `wgsl-nn train` reads as a dataset.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeGrayPng } from '../data/images.js';
import { WgslNnError } from '../gpu/errors.js';
import { inference } from '../nn/modules.js';
import { Rng } from '../util/rng.js';
import { type Generator, latentBatch, pixelRange } from './models.js';

/** Images [n, S*S] in [0, 1] for the given class labels, from noise drawn with `rng`. */
export async function generateImages(G: Generator, labels: ArrayLike<number>, rng: Rng, batchSize = 64): Promise<Float32Array> {
  const c = G.config;
  const S = c.imageSize;
  const n = labels.length;
  const out = new Float32Array(n * S * S);
  const signed = pixelRange(c.arch) === 'signed';
  const e = G.parameters()[0].engine;
  for (let start = 0; start < n; start += batchSize) {
    const lab = Array.from({ length: Math.min(batchSize, n - start) }, (_, i) => labels[start + i]);
    const z = latentBatch(c, lab, () => rng.normal());
    const x = e.tidy(() => inference(G, () => G.forward(e.tensor(z, [lab.length, G.inputDim]))));
    const v = (await x.toArray()) as Float32Array;
    x.dispose();
    for (let i = 0; i < v.length; i++) out[start * S * S + i] = signed ? (v[i] + 1) / 2 : v[i];
  }
  return out;
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
 * Writes `perClass` generated PNGs of every class under out/<class>/<class>_00000.png: a
 * class-per-folder dataset (the layout `wgsl-nn train` reads). Returns the files written.
 */
export async function writeSampleFolders(G: Generator, out: string, perClass: number, seed: number): Promise<string[]> {
  if (!Number.isInteger(perClass) || perClass < 1) throw new WgslNnError(`--count must be a positive integer, got ${perClass}`);
  const { classes, imageSize: S } = G.config;
  const rng = new Rng(seed);
  const files: string[] = [];
  for (let k = 0; k < classes.length; k++) {
    const dir = join(out, classes[k]);
    mkdirSync(dir, { recursive: true });
    const imgs = await generateImages(G, new Int32Array(perClass).fill(k), rng);
    for (let i = 0; i < perClass; i++) {
      const file = join(dir, `${classes[k]}_${String(i).padStart(5, '0')}.png`);
      await writeGrayPng(file, imgs.subarray(i * S * S, (i + 1) * S * S), S, S);
      files.push(file);
    }
  }
  return files;
}
