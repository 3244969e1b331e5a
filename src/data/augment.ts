// On-the-fly, seeded augmentation of grayscale images (plain TypeScript, one pass per image).
//
// One affine map takes each output pixel to the source: random crop (a fraction of each side),
// rotation about the crop centre, horizontal/vertical flip, and the resize to the output size;
// the source is sampled bilinearly with symmetric reflection outside the image (no black
// corners; 'edge' clamps instead). Brightness/contrast jitter follows, then a clamp to [0, 1].
// Sources may be Float32 in [0, 1] or 8-bit (scaled by 1/255 while sampling), so a cache can
// keep images as bytes.

import type { Rng } from '../util/rng.js';

/** A grayscale image, row-major: Float32 in [0, 1] or 8-bit 0..255. */
export interface GraySource {
  width: number;
  height: number;
  data: Float32Array | Uint8Array;
}

export interface AugmentOptions {
  /** Fraction of each source side kept by the random crop, [min, max]. Default [0.8, 1]. */
  cropScale?: [number, number];
  /** Rotation uniform in [-max, max] degrees. Default 30. */
  maxRotationDeg?: number;
  /** Flip left-right with probability 0.5. Default true. */
  flipH?: boolean;
  /** Flip top-bottom with probability 0.5. Default true. */
  flipV?: boolean;
  /** Additive brightness uniform in [-b, b]. Default 0 (off). */
  brightness?: number;
  /** Contrast factor uniform in [1-c, 1+c] about the image mean. Default 0 (off). */
  contrast?: number;
  /** Outside the source: 'reflect' (symmetric mirror, default) or 'edge' (clamp). */
  fill?: 'reflect' | 'edge';
}

export const DEFAULT_AUGMENT: Required<AugmentOptions> = {
  cropScale: [0.8, 1],
  maxRotationDeg: 30,
  flipH: true,
  flipV: true,
  brightness: 0,
  contrast: 0,
  fill: 'reflect',
};

/** One draw of the random transform, in source pixels. */
export interface AugmentParams {
  /** Crop size in source pixels. */
  cropW: number;
  cropH: number;
  /** Crop centre in source pixel coordinates (0 = left edge of the first pixel). */
  cx: number;
  cy: number;
  /** Rotation in radians. */
  angle: number;
  flipH: boolean;
  flipV: boolean;
  /** Additive brightness. */
  brightness: number;
  /** Contrast factor (1 = unchanged). */
  contrast: number;
}

/** Parameters that map the whole source onto the output unchanged (a plain resize). */
export function identityParams(srcW: number, srcH: number): AugmentParams {
  return { cropW: srcW, cropH: srcH, cx: srcW / 2, cy: srcH / 2, angle: 0, flipH: false, flipV: false, brightness: 0, contrast: 1 };
}

/** Draw transform parameters. The number of rng draws is fixed (7), whatever the options. */
export function sampleAugmentParams(rng: Rng, srcW: number, srcH: number, options: AugmentOptions = {}): AugmentParams {
  const o = { ...DEFAULT_AUGMENT, ...options };
  const [lo, hi] = o.cropScale;
  const s = lo + (hi - lo) * rng.next();
  const cropW = srcW * s;
  const cropH = srcH * s;
  const cx = cropW / 2 + (srcW - cropW) * rng.next();
  const cy = cropH / 2 + (srcH - cropH) * rng.next();
  const angle = ((2 * rng.next() - 1) * o.maxRotationDeg * Math.PI) / 180;
  const fh = rng.next() < 0.5;
  const fv = rng.next() < 0.5;
  const b = (2 * rng.next() - 1) * o.brightness;
  const c = 1 + (2 * rng.next() - 1) * o.contrast;
  // '+ 0' turns -0 into 0, so 'off' options give exactly identity-like parameters.
  return { cropW, cropH, cx, cy, angle: angle + 0, flipH: o.flipH && fh, flipV: o.flipV && fv, brightness: b + 0, contrast: c };
}

/** Symmetric reflection of an integer index into [0, n). */
function reflectIndex(i: number, n: number): number {
  if (i >= 0 && i < n) return i;
  const p = 2 * n;
  let m = i % p;
  if (m < 0) m += p;
  return m < n ? m : p - 1 - m;
}

function clampIndex(i: number, n: number): number {
  return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/**
 * Apply a transform: writes outSize*outSize values into `out` at `offset` (allocated when absent)
 * and returns `out`.
 */
export function applyAugment(
  src: GraySource,
  outSize: number,
  p: AugmentParams,
  out?: Float32Array,
  offset = 0,
  fill: 'reflect' | 'edge' = 'reflect',
): Float32Array {
  const W = src.width;
  const H = src.height;
  const S = outSize;
  const data = src.data;
  if (data.length !== W * H) throw new RangeError(`augment: source data has ${data.length} values for ${W}x${H}`);
  const scale = data instanceof Uint8Array ? 1 / 255 : 1;
  const dst = out ?? new Float32Array(S * S);
  if (dst.length < offset + S * S) throw new RangeError('augment: output buffer too small');

  const sx = (p.cropW / S) * (p.flipH ? -1 : 1);
  const sy = (p.cropH / S) * (p.flipV ? -1 : 1);
  const cos = Math.cos(p.angle);
  const sin = Math.sin(p.angle);
  // Source position (in pixel-index space, i.e. minus 0.5) of output pixel (u, v):
  //   x = x0 + u*ax + v*bx,  y = y0 + u*ay + v*by
  const ax = cos * sx;
  const ay = sin * sx;
  const bx = -sin * sy;
  const by = cos * sy;
  const c0 = 0.5 - S / 2;
  const x0 = p.cx - 0.5 + c0 * ax + c0 * bx;
  const y0 = p.cy - 0.5 + c0 * ay + c0 * by;
  const reflect = fill === 'reflect';
  const wm1 = W - 1;
  const hm1 = H - 1;

  let o = offset;
  let sum = 0;
  for (let v = 0; v < S; v++) {
    let x = x0 + v * bx;
    let y = y0 + v * by;
    for (let u = 0; u < S; u++, x += ax, y += ay, o++) {
      const xi = Math.floor(x);
      const yi = Math.floor(y);
      const fx = x - xi;
      const fy = y - yi;
      let i00: number, i01: number, i10: number, i11: number;
      if (xi >= 0 && yi >= 0 && xi < wm1 && yi < hm1) {
        i00 = yi * W + xi;
        i01 = i00 + 1;
        i10 = i00 + W;
        i11 = i10 + 1;
      } else {
        const xa = reflect ? reflectIndex(xi, W) : clampIndex(xi, W);
        const xb = reflect ? reflectIndex(xi + 1, W) : clampIndex(xi + 1, W);
        const ya = (reflect ? reflectIndex(yi, H) : clampIndex(yi, H)) * W;
        const yb = (reflect ? reflectIndex(yi + 1, H) : clampIndex(yi + 1, H)) * W;
        i00 = ya + xa;
        i01 = ya + xb;
        i10 = yb + xa;
        i11 = yb + xb;
      }
      const top = data[i00] + (data[i01] - data[i00]) * fx;
      const bot = data[i10] + (data[i11] - data[i10]) * fx;
      const val = (top + (bot - top) * fy) * scale;
      dst[o] = val;
      sum += val;
    }
  }

  if (p.brightness !== 0 || p.contrast !== 1) {
    const n = S * S;
    const mean = sum / n;
    const c = p.contrast;
    const add = mean + p.brightness - mean * c;
    for (let i = offset; i < offset + n; i++) {
      const t = dst[i] * c + add;
      dst[i] = t < 0 ? 0 : t > 1 ? 1 : t;
    }
  }
  return dst;
}

/** Draw parameters from `rng` and apply them. */
export function augmentImage(src: GraySource, outSize: number, rng: Rng, options: AugmentOptions = {}, out?: Float32Array, offset = 0): Float32Array {
  const p = sampleAugmentParams(rng, src.width, src.height, options);
  return applyAugment(src, outSize, p, out, offset, options.fill ?? DEFAULT_AUGMENT.fill);
}

/** Bilinear resize of the whole image to outSize x outSize (no augmentation). */
export function resizeBilinear(src: GraySource, outSize: number, out?: Float32Array, offset = 0): Float32Array {
  return applyAugment(src, outSize, identityParams(src.width, src.height), out, offset, 'edge');
}

/** Exact left-right mirror. */
export function flipHorizontal(data: Float32Array, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const r = y * width;
    for (let x = 0; x < width; x++) out[r + x] = data[r + width - 1 - x];
  }
  return out;
}

/** Exact top-bottom mirror. */
export function flipVertical(data: Float32Array, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) out.set(data.subarray((height - 1 - y) * width, (height - y) * width), y * width);
  return out;
}
