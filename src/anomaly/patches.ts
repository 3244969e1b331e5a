// From an image file to patches and back to a per-pixel map, on the CPU.
//
//   loadWorkImage   decode (grayscale), scale to the working resolution, standardise per image:
//                   p = 0.5 + (v - median) / (2 * contrast * sigma), clamped to [0, 1], with the robust
//                   spread sigma = (P84 - P16) / 2 (the std of a normal distribution, but not pulled up by
//                   a defect covering part of the image). This removes the session-to-session changes of
//                   exposure and gain between tiles and keeps the brightness changes within a tile.
//   gridPositions   patch origins along one axis: every `stride` pixels, the last one flush with the edge.
//   extractPatch    one patch; outside the image (an image smaller than a patch) the border is repeated.
//   MapAccumulator  overlapping patch maps averaged into one map of the working image.
//   gaussianBlur, resizeBilinear   the map smoothed, and brought to the original image size.
import { WgslNnError } from '../gpu/errors.js';
import { type GrayImage8, loadGray8, resizeGray8 } from '../data/images.js';
import type { Rng } from '../util/rng.js';

/** An image at the working resolution, standardised, values in [0, 1]. */
export interface WorkImage {
  /** Working size. */
  width: number;
  height: number;
  data: Float32Array;
  /** Size of the original image (the map is returned at this size). */
  originalWidth: number;
  originalHeight: number;
}

export interface LoadWorkOptions {
  scale: number;
  contrast: number;
  /** Name in error messages for a Buffer input. */
  name?: string;
}

/** Decodes an image (path or Buffer; ImageDecodeError naming it when it cannot) to a standardised working image. */
export async function loadWorkImage(input: string | Buffer, opts: LoadWorkOptions): Promise<WorkImage> {
  return workImageFrom(await loadGray8(input, { name: opts.name }), opts);
}

/** A decoded 8-bit image to a standardised working image. */
export async function workImageFrom(g: GrayImage8, opts: Pick<LoadWorkOptions, 'scale' | 'contrast'>): Promise<WorkImage> {
  const width = Math.max(1, Math.round(g.width * opts.scale));
  const height = Math.max(1, Math.round(g.height * opts.scale));
  const pixels = width === g.width && height === g.height ? g.data : await resizeGray8(g, width, height, 'fill');
  return { width, height, data: standardize8(pixels, opts.contrast), originalWidth: g.width, originalHeight: g.height };
}

/** Per-image robust standardisation of 8-bit pixels (see the file comment). */
export function standardize8(pixels: Uint8Array, contrast: number): Float32Array {
  const hist = new Float64Array(256);
  for (let i = 0; i < pixels.length; i++) hist[pixels[i]]++;
  const q = (f: number): number => {
    const target = f * pixels.length;
    let acc = 0;
    for (let v = 0; v < 256; v++) {
      acc += hist[v];
      if (acc >= target) return v;
    }
    return 255;
  };
  const median = q(0.5);
  const sigma = Math.max((q(0.84) - q(0.16)) / 2, 1);
  const k = 1 / (2 * contrast * sigma);
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    const v = 0.5 + (pixels[i] - median) * k;
    out[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
  return out;
}

/** Patch origins along an axis of `length` pixels: 0, stride, 2*stride, ..., and length - patch last (one origin, 0, when length <= patch). */
export function gridPositions(length: number, patch: number, stride: number): number[] {
  if (!(stride >= 1)) throw new WgslNnError(`stride must be >= 1, got ${stride}`);
  if (length <= patch) return [0];
  const out: number[] = [];
  for (let p = 0; p + patch < length; p += stride) out.push(p);
  out.push(length - patch);
  return out;
}

/** Patch origins of the scoring grid of an image, row by row. */
export function patchGrid(width: number, height: number, patch: number, stride: number): { x: number; y: number }[] {
  const out: { x: number; y: number }[] = [];
  for (const y of gridPositions(height, patch, stride)) for (const x of gridPositions(width, patch, stride)) out.push({ x, y });
  return out;
}

/**
 * Copies the patch at (x0, y0) of `img` into `out` at `offset`, flipped when asked; pixels outside the
 * image repeat the nearest border pixel.
 */
export function extractPatch(
  img: Pick<WorkImage, 'width' | 'height' | 'data'>,
  x0: number,
  y0: number,
  patch: number,
  out: Float32Array,
  offset: number,
  flip: { h?: boolean; v?: boolean } = {},
): void {
  const { width: W, height: H, data } = img;
  for (let v = 0; v < patch; v++) {
    const sy = Math.min(H - 1, Math.max(0, y0 + (flip.v ? patch - 1 - v : v)));
    for (let u = 0; u < patch; u++) {
      const sx = Math.min(W - 1, Math.max(0, x0 + (flip.h ? patch - 1 - u : u)));
      out[offset + v * patch + u] = data[sy * W + sx];
    }
  }
}

/**
 * `count` random patches of random images (uniform over images), each flipped at random. A share
 * `gridShare` of them sit exactly on the scoring grid of `stride` (so the patches flush with the image
 * edges, where a tile's border and a strip of background show, are as common as when scoring); the
 * rest anywhere.
 */
export function randomPatches(images: readonly WorkImage[], count: number, patch: number, rng: Rng, options: { flips?: boolean; gridShare?: number; stride?: number } = {}): Float32Array {
  if (images.length === 0) throw new WgslNnError('randomPatches: no images');
  const flips = options.flips ?? true;
  const gridShare = options.gridShare ?? 0;
  if (gridShare > 0 && !(options.stride! >= 1)) throw new WgslNnError('randomPatches: a grid share needs the stride');
  const out = new Float32Array(count * patch * patch);
  for (let i = 0; i < count; i++) {
    const img = images[rng.int(images.length)];
    let x0: number;
    let y0: number;
    if (gridShare > 0 && rng.next() < gridShare) {
      const xs = gridPositions(img.width, patch, options.stride!);
      const ys = gridPositions(img.height, patch, options.stride!);
      x0 = xs[rng.int(xs.length)];
      y0 = ys[rng.int(ys.length)];
    } else {
      x0 = rng.int(Math.max(1, img.width - patch + 1));
      y0 = rng.int(Math.max(1, img.height - patch + 1));
    }
    extractPatch(img, x0, y0, patch, out, i * patch * patch, { h: flips && rng.next() < 0.5, v: flips && rng.next() < 0.5 });
  }
  return out;
}

/** Sums patch maps placed at their origins and averages where they overlap. */
export class MapAccumulator {
  private readonly sum: Float32Array;
  private readonly count: Uint16Array;

  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.sum = new Float32Array(width * height);
    this.count = new Uint16Array(width * height);
  }

  /** Adds a patch x patch map (row-major, from `src` at `offset`) with its origin at (x0, y0); what falls outside is dropped. */
  add(src: ArrayLike<number>, offset: number, x0: number, y0: number, patch: number): void {
    for (let v = 0; v < patch; v++) {
      const y = y0 + v;
      if (y >= this.height) break;
      for (let u = 0; u < patch; u++) {
        const x = x0 + u;
        if (x >= this.width) break;
        this.sum[y * this.width + x] += src[offset + v * patch + u];
        this.count[y * this.width + x]++;
      }
    }
  }

  /** The averaged map (0 where no patch fell). */
  result(): Float32Array {
    const out = new Float32Array(this.sum.length);
    for (let i = 0; i < out.length; i++) out[i] = this.count[i] ? this.sum[i] / this.count[i] : 0;
    return out;
  }
}

/** Separable Gaussian blur (std `sigma` pixels, kernel radius ceil(3 sigma), borders mirrored); sigma 0 copies. */
export function gaussianBlur(data: Float32Array, width: number, height: number, sigma: number): Float32Array {
  if (!(sigma > 0)) return data.slice();
  const r = Math.ceil(3 * sigma);
  const w = new Float64Array(2 * r + 1);
  let s = 0;
  for (let i = -r; i <= r; i++) s += w[i + r] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < w.length; i++) w[i] /= s;
  const mirror = (i: number, n: number): number => {
    if (n === 1) return 0;
    const period = 2 * n - 2;
    let m = ((i % period) + period) % period;
    if (m >= n) m = period - m;
    return m;
  };
  const tmp = new Float32Array(data.length);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let k = -r; k <= r; k++) acc += w[k + r] * data[y * width + mirror(x + k, width)];
      tmp[y * width + x] = acc;
    }
  const out = new Float32Array(data.length);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      let acc = 0;
      for (let k = -r; k <= r; k++) acc += w[k + r] * tmp[mirror(y + k, height) * width + x];
      out[y * width + x] = acc;
    }
  return out;
}

/** Bilinear resampling of a row-major map to outW x outH (pixel centres aligned, as torch's align_corners=False). */
export function resizeBilinear(data: ArrayLike<number>, width: number, height: number, outW: number, outH: number): Float32Array {
  const out = new Float32Array(outW * outH);
  const sx = width / outW;
  const sy = height / outH;
  for (let y = 0; y < outH; y++) {
    const fy = Math.min(height - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(height - 1, y0 + 1);
    const ty = fy - y0;
    for (let x = 0; x < outW; x++) {
      const fx = Math.min(width - 1, Math.max(0, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(width - 1, x0 + 1);
      const tx = fx - x0;
      const top = data[y0 * width + x0] * (1 - tx) + data[y0 * width + x1] * tx;
      const bot = data[y1 * width + x0] * (1 - tx) + data[y1 * width + x1] * tx;
      out[y * outW + x] = top * (1 - ty) + bot * ty;
    }
  }
  return out;
}
