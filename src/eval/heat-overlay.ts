// Heat maps drawn over grayscale images, shared by Grad-CAM (src/cnn/gradcam.ts) and the anomaly maps
// (src/anomaly/heatmap.ts): the jet colour map, the blend, and the RGB PNG writer. Each caller only
// says how a map value becomes a colour-scale position and an opacity.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import sharp from 'sharp';
import type { GrayImage8 } from '../data/images.js';
import { WgslNnError } from '../gpu/errors.js';

/** A map of one value per pixel, row-major, the size of the image it is drawn over. */
export interface PixelMap {
  width: number;
  height: number;
  data: ArrayLike<number>;
}

/** Jet colour map: t in [0, 1] -> [r, g, b] in [0, 1] (blue, cyan, yellow, red). */
export function jet(t: number): [number, number, number] {
  const c = (x: number) => (x < 0 ? 0 : x > 1 ? 1 : x);
  return [c(1.5 - Math.abs(4 * t - 3)), c(1.5 - Math.abs(4 * t - 2)), c(1.5 - Math.abs(4 * t - 1))];
}

/**
 * RGB bytes of `image` with `map` blended over it: `colour(v)` gives a map value's position t on the
 * jet scale and its opacity alpha; each channel is gray * (1 - alpha) + 255 * jet(t) * alpha.
 */
export function blendHeat(image: GrayImage8, map: PixelMap, colour: (v: number) => { t: number; alpha: number }, what = 'heatmap'): Uint8Array {
  if (image.width !== map.width || image.height !== map.height)
    throw new WgslNnError(`${what}: the map is ${map.width}x${map.height}, the image ${image.width}x${image.height}`);
  const n = image.width * image.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const { t, alpha: a } = colour(map.data[i]);
    const [r, g, b] = jet(t);
    const gray = image.data[i];
    out[3 * i] = Math.round(gray * (1 - a) + 255 * r * a);
    out[3 * i + 1] = Math.round(gray * (1 - a) + 255 * g * a);
    out[3 * i + 2] = Math.round(gray * (1 - a) + 255 * b * a);
  }
  return out;
}

/** Writes width x height RGB bytes as a PNG (folders created as needed). */
export async function writeRgbPng(file: string, rgb: Uint8Array, width: number, height: number): Promise<void> {
  mkdirSync(dirname(file), { recursive: true });
  await sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.length), { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: 9 })
    .toFile(file);
}
