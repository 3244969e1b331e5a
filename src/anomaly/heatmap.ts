// Anomaly maps as pictures: a map over its image (jet colours, transparent where the surface looks
// normal), and a colour-scale convention shared by `--heatmap` and the docs figure.
//
// Colour scale: t = (v - 0.35 T) / (1.25 T - 0.35 T) clamped to [0, 1], with T the model's decision
// threshold on the score; opacity 0.7 t^0.75. A region scored as high as a defective image's score is
// red, the defect-free texture (about a quarter of T and below) stays uncoloured, and every image of a
// model uses the same scale, so two heatmaps can be compared by eye.
import type { GrayImage8 } from '../data/images.js';
import { blendHeat, writeRgbPng } from '../eval/heat-overlay.js';
import type { AnomalyMap } from './detector.js';

/** The colour-scale position of map values for a model with threshold T (see the file comment). */
export function heatLevel(v: number, threshold: number): number {
  const lo = 0.35 * threshold;
  const hi = 1.25 * threshold;
  const t = (v - lo) / (hi - lo);
  return t < 0 ? 0 : t > 1 ? 1 : t;
}

/** RGB bytes of `image` with `map` (same size) blended over it. */
export function overlayRgb(image: GrayImage8, map: AnomalyMap, threshold: number): Uint8Array {
  return blendHeat(image, map, (v) => {
    const t = heatLevel(v, threshold);
    return { t, alpha: t > 0 ? 0.7 * Math.pow(t, 0.75) : 0 };
  });
}

/** Writes the image with its anomaly map overlaid as an RGB PNG (folders created as needed). */
export async function writeHeatmapPng(file: string, image: GrayImage8, map: AnomalyMap, threshold: number): Promise<void> {
  await writeRgbPng(file, overlayRgb(image, map, threshold), image.width, image.height);
}
