// Anomaly maps as pictures: a map over its image (jet colours, transparent where the surface looks
// normal), and a colour-scale convention shared by `--heatmap` and the docs figure.
//
// Colour scale: t = (v - 0.35 T) / (1.25 T - 0.35 T) clamped to [0, 1], with T the model's decision
// threshold on the score; opacity 0.7 t^0.75. A region scored as high as a defective image's score is
// red, the defect-free texture (about a quarter of T and below) stays uncoloured, and every image of a
// model uses the same scale, so two heatmaps can be compared by eye.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import sharp from 'sharp';
import type { GrayImage8 } from '../data/images.js';
import { WgslNnError } from '../gpu/errors.js';
import type { AnomalyMap } from './detector.js';

/** Jet colour map: t in [0, 1] -> [r, g, b] in [0, 1] (blue, cyan, yellow, red). */
export function jet(t: number): [number, number, number] {
  const c = (x: number) => (x < 0 ? 0 : x > 1 ? 1 : x);
  return [c(1.5 - Math.abs(4 * t - 3)), c(1.5 - Math.abs(4 * t - 2)), c(1.5 - Math.abs(4 * t - 1))];
}

/** The colour-scale position of map values for a model with threshold T (see the file comment). */
export function heatLevel(v: number, threshold: number): number {
  const lo = 0.35 * threshold;
  const hi = 1.25 * threshold;
  const t = (v - lo) / (hi - lo);
  return t < 0 ? 0 : t > 1 ? 1 : t;
}

/** RGB bytes of `image` with `map` (same size) blended over it. */
export function overlayRgb(image: GrayImage8, map: AnomalyMap, threshold: number): Uint8Array {
  if (image.width !== map.width || image.height !== map.height)
    throw new WgslNnError(`heatmap: the map is ${map.width}x${map.height}, the image ${image.width}x${image.height}`);
  const n = image.width * image.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const t = heatLevel(map.data[i], threshold);
    const a = t > 0 ? 0.7 * Math.pow(t, 0.75) : 0;
    const [r, g, b] = jet(t);
    const gray = image.data[i];
    out[3 * i] = Math.round(gray * (1 - a) + 255 * r * a);
    out[3 * i + 1] = Math.round(gray * (1 - a) + 255 * g * a);
    out[3 * i + 2] = Math.round(gray * (1 - a) + 255 * b * a);
  }
  return out;
}

/** Writes the image with its anomaly map overlaid as an RGB PNG (folders created as needed). */
export async function writeHeatmapPng(file: string, image: GrayImage8, map: AnomalyMap, threshold: number): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  const rgb = overlayRgb(image, map, threshold);
  await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.length), { raw: { width: image.width, height: image.height, channels: 3 } })
    .png({ compressionLevel: 9 })
    .toFile(file);
}
