// Controlled degradations of grayscale images (pixels in [0, 1]), for checking that a quality metric
// ranks worse images as worse: Gaussian blur and additive Gaussian noise.
import { ShapeError } from '../gpu/errors.js';
import type { GrayImage } from '../data/images.js';
import { Rng } from '../util/rng.js';

function checkImage(img: GrayImage, what: string): void {
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width < 1 || img.height < 1)
    throw new ShapeError(`${what}: image size must be positive integers, got ${img.width}x${img.height}`);
  if (img.data.length !== img.width * img.height)
    throw new ShapeError(`${what}: image data holds ${img.data.length} values, expected ${img.width}x${img.height} = ${img.width * img.height}`);
}

/** Index i mirrored into [0, n) with the edge pixel repeated (d c b a | a b c d | d c b a), for any i. */
export function reflectIndex(i: number, n: number): number {
  const m = ((i % (2 * n)) + 2 * n) % (2 * n);
  return m < n ? m : 2 * n - 1 - m;
}

/** The normalised 1-D Gaussian of standard deviation sigma, radius ceil(3 sigma): 2r+1 taps. */
export function gaussianKernel(sigma: number): Float64Array {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = new Float64Array(2 * r + 1);
  let sum = 0;
  for (let i = -r; i <= r; i++) sum += k[i + r] = Math.exp((-i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  return k;
}

/**
 * Gaussian blur of standard deviation `sigma` pixels: separable (rows, then columns, in float64),
 * borders mirrored, so a flat image stays flat. sigma 0 returns a copy.
 */
export function blur(img: GrayImage, sigma: number): GrayImage {
  checkImage(img, 'blur');
  if (!(sigma >= 0) || !Number.isFinite(sigma)) throw new RangeError(`blur: sigma must be a finite number >= 0, got ${sigma}`);
  const { width: w, height: h } = img;
  if (sigma === 0) return { width: w, height: h, data: Float32Array.from(img.data) };
  const k = gaussianKernel(sigma);
  const r = (k.length - 1) / 2;
  const rows = new Float64Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let t = -r; t <= r; t++) s += k[t + r] * img.data[y * w + reflectIndex(x + t, w)];
      rows[y * w + x] = s;
    }
  }
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let t = -r; t <= r; t++) s += k[t + r] * rows[reflectIndex(y + t, h) * w + x];
      out[y * w + x] = s;
    }
  }
  return { width: w, height: h, data: out };
}

export interface NoiseOptions {
  /** Clip the result to [0, 1] as a saved image would be (default true). */
  clip?: boolean;
}

/** Adds independent Gaussian noise of standard deviation `std` to each pixel, deterministic per seed. */
export function addNoise(img: GrayImage, std: number, seed: number, opts: NoiseOptions = {}): GrayImage {
  checkImage(img, 'addNoise');
  if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError(`addNoise: std must be a finite number >= 0, got ${std}`);
  const clip = opts.clip ?? true;
  const rng = new Rng(seed);
  const out = new Float32Array(img.data.length);
  for (let i = 0; i < out.length; i++) {
    const v = img.data[i] + std * rng.normal();
    out[i] = clip ? (v < 0 ? 0 : v > 1 ? 1 : v) : v;
  }
  return { width: img.width, height: img.height, data: out };
}
