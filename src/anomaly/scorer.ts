// Scoring patches with the three networks, and turning patch residuals into an image's anomaly map
// and score (f-AnoGAN, Schlegl et al. 2019, applied patch by patch).
//
// For each grid patch x (in the generator's range [-1, 1]) with reconstruction x^ = G(E(x)):
//   pixel residual    (x - x^)^2                                        per pixel of the patch
//   feature residual  mean over channels of (f(x) - f(x^))^2             per cell of f, upsampled
//                     with f = the discriminator's body (its last feature map, 4x4 cells per patch)
// Overlapping patches are averaged into two maps of the working image. A model with feature memories
// (feature-memory.ts; one per backbone) has a third term, each pixel's distance to the nearest defect-free
// feature of each memory. The anomaly map is
//   map = blur_sigma( pixelWeight * pixel / pixelMean + featureWeight * feature / featureMean
//                     + memoryWeight * sum_i mix_i * memory_i / memoryMean_i / sum_i mix_i )
// where the means are the mean residuals over the validation good images, so with weights 1 the terms
// weigh the same on defect-free parts (f-AnoGAN's A_R + kappa A_D, with kappa set by calibration instead
// of by hand; calibrate.ts chooses the weights on synthetic defects). The image score is the mean of the `topK` largest map values (1: the maximum):
// a defect of a few pixels decides the score, however large the rest of the tile.
import { WgslNnError } from '../gpu/errors.js';
import type { Discriminator, Generator } from '../gan/models.js';
import * as F from '../nn/functional.js';
import type { Module } from '../nn/modules.js';
import { noGrad } from '../nn/tensor.js';
import type { ResolvedAnomalyConfig } from './config.js';
import type { Encoder } from './encoder.js';
import type { FeatureMemory } from './feature-memory.js';
import { extractPatch, gaussianBlur, MapAccumulator, patchGrid, resizeBilinear, type WorkImage } from './patches.js';

export interface AnomalyNetworks {
  generator: Generator;
  discriminator: Discriminator;
  encoder: Encoder;
  /** The optional feature memories (the third term of the map), one per backbone. */
  memories?: FeatureMemory[];
}

/** The residual maps of a working image (before calibration). */
export interface ResidualMaps {
  width: number;
  height: number;
  pixel: Float32Array;
  feature: Float32Array;
  /** Distance to each feature memory (models with them), in the order of AnomalyNetworks.memories. */
  memories?: Float32Array[];
}

/** How residual maps become an anomaly map and a score (stored in the model). */
export interface Scoring {
  /** Mean pixel and feature residual over the validation good images (the maps' units). */
  pixelMean: number;
  featureMean: number;
  /** Weight of the feature term (default 1: both terms equal on defect-free surface). */
  featureWeight?: number;
  /** Weight of the pixel term (default 1). */
  pixelWeight?: number;
  /** Weight of the feature-memory term (default 0). */
  memoryWeight?: number;
  /** Mean distance to each memory over the validation good images (the memory maps' units). */
  memoryMeans?: number[];
  /** Relative weights of the memories inside the memory term (default: equal). */
  memoryMix?: number[];
  /** The map's normal level by distance to the image edge in working pixels (the last entry: that far and farther); absent: 1 everywhere. */
  edgeScale?: number[];
  /** Average the residuals of the image and of its mirror image (left-right), un-mirrored: less noise, twice the work. */
  mirror?: boolean;
  /** Std of the Gaussian smoothing of the map, in working-resolution pixels (0: none). */
  sigma: number;
  /** The image score is the mean of the topK largest map values. */
  topK: number;
}

/** Runs modules in eval mode without recording, restoring their modes afterwards. */
export function inEval<T>(modules: Module[], fn: () => T): T {
  const modes = modules.map((m) => m.training);
  modules.forEach((m) => m.eval());
  try {
    return noGrad(fn);
  } finally {
    modules.forEach((m, i) => m.train(modes[i]));
  }
}

/** [0, 1] pixels to the generator's tanh range. */
export function toModelRange(pixels: Float32Array): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = pixels[i] * 2 - 1;
  return out;
}

/**
 * One batch of patches ([n, P*P] in [0, 1]) through E, G and D's body: the pixel residuals [n, P*P],
 * the feature residuals [n, c*c] (c = the feature map's side) and the reconstructions [n, P*P] in [0, 1].
 */
export async function patchResiduals(
  nets: AnomalyNetworks,
  patches: Float32Array,
  patchSize: number,
): Promise<{ pixel: Float32Array; feature: Float32Array; featureSide: number; reconstruction: Float32Array }> {
  const { generator: G, discriminator: D, encoder: E } = nets;
  const P = patchSize;
  const n = patches.length / (P * P);
  if (!Number.isInteger(n) || n < 1) throw new WgslNnError(`patchResiduals: ${patches.length} values are not whole ${P}x${P} patches`);
  const e = G.parameters()[0].engine;
  const out = e.tidy(() =>
    inEval([G, D, E], () => {
      const x = e.tensor(toModelRange(patches), [n, 1, P, P]);
      const xr = G.forward(E.forward(x));
      const d = F.sub(x, xr);
      const fd = F.sub(D.body.forward(x), D.body.forward(xr));
      return { pixel: F.mul(d, d), feature: F.mean(F.mul(fd, fd), [1]), xr };
    }),
  );
  try {
    const [pixel, feature, xr] = (await Promise.all([out.pixel.toArray(), out.feature.toArray(), out.xr.toArray()])) as Float32Array[];
    const featureSide = out.feature.shape[1];
    for (let i = 0; i < xr.length; i++) xr[i] = (xr[i] + 1) / 2;
    return { pixel, feature, featureSide, reconstruction: xr };
  } finally {
    out.pixel.dispose();
    out.feature.dispose();
    out.xr.dispose();
  }
}

/** The residual maps of several working images; their grid patches go through the networks in batches of up to `batchSize`. */
export async function residualMaps(
  nets: AnomalyNetworks,
  config: ResolvedAnomalyConfig,
  images: readonly WorkImage[],
  batchSize = 128,
  terms: ScoringTerms = { gan: true, memory: true },
): Promise<ResidualMaps[]> {
  const P = config.patchSize;
  const acc = images.map((im) => ({ pixel: new MapAccumulator(im.width, im.height), feature: new MapAccumulator(im.width, im.height) }));
  // Without the GAN terms the patches are not run at all (the two maps stay zero).
  const jobs = terms.gan ? images.flatMap((im, i) => patchGrid(im.width, im.height, P, config.stride).map((p) => ({ image: i, ...p }))) : [];
  for (let start = 0; start < jobs.length; start += batchSize) {
    const chunk = jobs.slice(start, start + batchSize);
    const x = new Float32Array(chunk.length * P * P);
    chunk.forEach((j, k) => extractPatch(images[j.image], j.x, j.y, P, x, k * P * P));
    const r = await patchResiduals(nets, x, P);
    const c = r.featureSide;
    chunk.forEach((j, k) => {
      acc[j.image].pixel.add(r.pixel, k * P * P, j.x, j.y, P);
      const f = resizeBilinear(r.feature.subarray(k * c * c, (k + 1) * c * c), c, c, P, P);
      acc[j.image].feature.add(f, 0, j.x, j.y, P);
    });
  }
  const out: ResidualMaps[] = images.map((im, i) => ({ width: im.width, height: im.height, pixel: acc[i].pixel.result(), feature: acc[i].feature.result() }));
  const memories = nets.memories ?? [];
  const wanted = (k: number) => (Array.isArray(terms.memory) ? terms.memory[k] : terms.memory);
  if (memories.some((_, k) => wanted(k)))
    for (let i = 0; i < images.length; i++) {
      const maps: Float32Array[] = [];
      // A memory the scoring does not weigh gets a zero map (its nearest-neighbour search is the expensive part).
      for (const [k, m] of memories.entries()) maps.push(wanted(k) ? await m.distanceMap(images[i]) : new Float32Array(images[i].width * images[i].height));
      out[i].memories = maps;
    }
  return out;
}

/** Distance of (x, y) to the nearest edge of a width x height image, capped at `cap`. */
export function edgeDistance(x: number, y: number, width: number, height: number, cap: number): number {
  return Math.min(cap, x, y, width - 1 - x, height - 1 - y);
}

/** The anomaly map before the edge normalisation (see the file comment). */
export function rawAnomalyMap(r: ResidualMaps, s: Omit<Scoring, 'edgeScale'>): Float32Array {
  const m = new Float32Array(r.pixel.length);
  const a = (s.pixelWeight ?? 1) / s.pixelMean;
  const b = (s.featureWeight ?? 1) / s.featureMean;
  for (let i = 0; i < m.length; i++) m[i] = r.pixel[i] * a + r.feature[i] * b;
  const mw = s.memoryWeight ?? 0;
  if (mw > 0) {
    const n = r.memories?.length ?? 0;
    const means = s.memoryMeans ?? [];
    if (n === 0 || means.length !== n || !means.every((v) => v > 0))
      throw new WgslNnError(`the scoring uses the feature memory, but the model has ${n} memories and ${means.length} calibrated memory means`);
    const mix = s.memoryMix ?? new Array<number>(n).fill(1);
    if (mix.length !== n || !mix.every((v) => v >= 0) || !(mix.reduce((a, v) => a + v, 0) > 0))
      throw new WgslNnError(`memoryMix must hold ${n} non-negative weights, not all 0; got [${mix.join(', ')}]`);
    const total = mix.reduce((a, v) => a + v, 0);
    r.memories!.forEach((map, k) => {
      const c = (mw * mix[k]) / total / means[k];
      if (c > 0) for (let i = 0; i < m.length; i++) m[i] += map[i] * c;
    });
  }
  return gaussianBlur(m, r.width, r.height, s.sigma);
}

/** A left-right mirror image of a row-major map. */
export function mirrorMap(data: Float32Array, width: number, height: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) out[y * width + x] = data[y * width + width - 1 - x];
  return out;
}

/** A working image mirrored left-right. */
export function mirrorImage(img: WorkImage): WorkImage {
  return { ...img, data: mirrorMap(img.data, img.width, img.height) };
}

/** The mean of an image's residual maps and those of its mirror image (computed on the mirrored image, mirrored back). */
export function averageWithMirror(plain: ResidualMaps, mirrored: ResidualMaps): ResidualMaps {
  const { width: w, height: h } = plain;
  const average = (a: Float32Array, mirroredB: Float32Array) => {
    const out = mirrorMap(mirroredB, w, h);
    for (let i = 0; i < out.length; i++) out[i] = (out[i] + a[i]) / 2;
    return out;
  };
  const out: ResidualMaps = { width: w, height: h, pixel: average(plain.pixel, mirrored.pixel), feature: average(plain.feature, mirrored.feature) };
  if (plain.memories && mirrored.memories) out.memories = plain.memories.map((p, k) => average(p, mirrored.memories![k]));
  return out;
}

/** Which residual maps a scoring needs: the GAN's two (any weight > 0) and the memories'. */
export interface ScoringTerms {
  gan: boolean;
  /** All memories or none, or per memory. */
  memory: boolean | readonly boolean[];
}

export function scoringTerms(s: Pick<Scoring, 'pixelWeight' | 'featureWeight' | 'memoryWeight' | 'memoryMix'>): ScoringTerms {
  const memory = (s.memoryWeight ?? 0) > 0;
  return { gan: (s.pixelWeight ?? 1) > 0 || (s.featureWeight ?? 1) > 0, memory: memory && s.memoryMix ? s.memoryMix.map((w) => w > 0) : memory };
}

/** Residual maps as a scoring wants them: only the terms it weighs; with `mirror`, averaged with the mirror image's. */
export async function scoringResiduals(nets: AnomalyNetworks, config: ResolvedAnomalyConfig, images: readonly WorkImage[], scoring: Scoring, batchSize = 128): Promise<ResidualMaps[]> {
  const terms = scoringTerms(scoring);
  if (!scoring.mirror) return residualMaps(nets, config, images, batchSize, terms);
  const all = await residualMaps(nets, config, [...images, ...images.map(mirrorImage)], batchSize, terms);
  return images.map((_, i) => averageWithMirror(all[i], all[images.length + i]));
}

/** The anomaly map of a working image from its residual maps (see the file comment). */
export function anomalyMap(r: ResidualMaps, s: Scoring): Float32Array {
  const m = rawAnomalyMap(r, s);
  const e = s.edgeScale;
  if (!e?.length) return m;
  const cap = e.length - 1;
  for (let y = 0; y < r.height; y++) for (let x = 0; x < r.width; x++) m[y * r.width + x] /= e[edgeDistance(x, y, r.width, r.height, cap)];
  return m;
}

/**
 * The edge profile of defect-free maps: for each distance d = 0 .. bands - 1 to the nearest edge (the last
 * band: that far and farther), the `quantile` of the raw map values at that distance over `maps`. A band
 * with fewer than 64 pixels (images smaller than the bands) takes the previous band's value.
 */
export function edgeProfile(maps: readonly { width: number; height: number; map: Float32Array }[], bands: number, quantile: number): number[] {
  const values: number[][] = Array.from({ length: bands }, () => []);
  for (const { width, height, map } of maps)
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) values[edgeDistance(x, y, width, height, bands - 1)].push(map[y * width + x]);
  const out: number[] = [];
  for (let d = 0; d < bands; d++) {
    const v = values[d];
    if (v.length < 64) {
      if (d === 0) throw new WgslNnError('edgeProfile: too few pixels at the image edges');
      out.push(out[d - 1]);
      continue;
    }
    const sorted = Float64Array.from(v).sort();
    out.push(Math.max(sorted[Math.min(sorted.length - 1, Math.floor(quantile * (sorted.length - 1)))], 1e-12));
  }
  return out;
}

/** A working image's score: the top-k mean of its anomaly map (calibration and the proxy; the detector takes the same top-k mean of the map it also returns). */
export function imageScore(r: ResidualMaps, s: Scoring): number {
  return topKMean(anomalyMap(r, s), s.topK);
}

/** Mean of the k largest values (k clamped to [1, length]). */
export function topKMean(values: ArrayLike<number>, k: number): number {
  const n = values.length;
  if (n === 0) throw new WgslNnError('topKMean: no values');
  const kk = Math.max(1, Math.min(n, Math.round(k)));
  if (kk === 1) {
    let m = -Infinity;
    for (let i = 0; i < n; i++) if (values[i] > m) m = values[i];
    return m;
  }
  const sorted = Float32Array.from(values).sort();
  let s = 0;
  for (let i = n - kk; i < n; i++) s += sorted[i];
  return s / kk;
}

/** Mean of all values of several maps (the calibration's pixelMean / featureMean). */
export function meanOver(maps: readonly Float32Array[]): number {
  let s = 0;
  let n = 0;
  for (const m of maps) {
    for (let i = 0; i < m.length; i++) s += m[i];
    n += m.length;
  }
  if (n === 0) throw new WgslNnError('meanOver: no values');
  return s / n;
}
