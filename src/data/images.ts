// Image decoding for the CNN data pipeline (CPU, sharp/libvips).
//
// Every image becomes 8-bit grayscale, then Float32 in [0, 1]. Colour is converted by libvips
// ('b-w': sRGB luminance, linear-light Y re-encoded with the sRGB curve; pure red -> 127, not the
// 76 of Rec.601 luma); alpha is flattened onto black; 16-bit becomes 8-bit; EXIF orientation is
// applied. The format is taken from the file's content (magic bytes), not its name, so a text
// file named .png is reported as such.
// Supported: PNG, JPEG, TIFF, WebP. Anything else, an empty file or a corrupt/truncated file
// raises ImageDecodeError naming the file and the problem; sharp's own exceptions never leak.
// Hostile input: the declared size is read from the header before anything is decoded, and images
// over `maxPixels` (default MAX_IMAGE_PIXELS) or with a side over MAX_IMAGE_SIDE are refused, so a
// header claiming 100000x100000 or a decompression bomb (a few KB of deflated zeros declaring 10^9
// pixels) costs a header parse, not gigabytes or minutes. test/fuzz-images.test.ts feeds 10^4
// mutated files through this module.

import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { WgslNnError } from '../gpu/errors.js';

/** An image could not be read or decoded. `file` names it (path, or the name given for a Buffer). */
export class ImageDecodeError extends WgslNnError {
  constructor(
    readonly file: string,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`${problem}: ${file}`, options);
  }
}

/**
 * File extensions treated as images when scanning a dataset folder (case-insensitive).
 * BMP and GIF are deliberately not in the list: sharp's prebuilt libvips does not decode BMP,
 * and GIF is not an inspection-camera format; such files are skipped like any non-image file.
 */
export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.webp'];

export function isImageFile(file: string): boolean {
  return IMAGE_EXTENSIONS.includes(path.extname(file).toLowerCase());
}

export type ImageFormat = 'png' | 'jpeg' | 'tiff' | 'webp';

/** Sniff the format from the first bytes; a name for unsupported known formats; null if unknown. */
export function sniffFormat(buf: Uint8Array): ImageFormat | { unsupported: string } | null {
  const b = buf;
  const n = b.length;
  if (n >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a) return 'png';
  if (n >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (n >= 4 && ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a && b[3] === 0x00) || (b[0] === 0x4d && b[1] === 0x4d && b[2] === 0x00 && b[3] === 0x2a))) return 'tiff';
  if (n >= 12 && b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50) return 'webp';
  if (n >= 2 && b[0] === 0x42 && b[1] === 0x4d) return { unsupported: 'BMP' };
  if (n >= 4 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x38) return { unsupported: 'GIF' };
  if (n >= 12 && b[4] === 0x66 && b[5] === 0x74 && b[6] === 0x79 && b[7] === 0x70) return { unsupported: 'HEIF/AVIF' };
  return null;
}

const FORMAT_NAME: Record<ImageFormat, string> = { png: 'PNG', jpeg: 'JPEG', tiff: 'TIFF', webp: 'WebP' };

/** A grayscale image at its own size, row-major, values in [0, 1]. */
export interface GrayImage {
  width: number;
  height: number;
  data: Float32Array;
}

/** The same with the 8-bit values as decoded (before normalisation). */
export interface GrayImage8 {
  width: number;
  height: number;
  data: Uint8Array;
}

export type Fit = 'fill' | 'cover';

export interface LoadOptions {
  /** Name used in error messages when the input is a Buffer (default '<buffer>'). */
  name?: string;
  /** Largest image accepted, width x height in pixels (default MAX_IMAGE_PIXELS). */
  maxPixels?: number;
}

/**
 * Default pixel limit: 100 megapixels (e.g. 10000x10000), beyond any inspection camera frame. At the
 * limit loadGray8 returns 100 MB and loadGray 400 MB; sharp's own default would allow 268 megapixels.
 */
export const MAX_IMAGE_PIXELS = 100_000_000;

/**
 * Longest side accepted. Resizing cost grows with the longer side times the output size whatever
 * the pixel count: a 1 x 3,000,000 strip (3 KB as PNG) took 1.3 s to resize to 64x64 on 2 cores, and
 * libvips cannot shrink by a factor over 10^6 at all (1 x 10^8 failed with a GLib warning).
 */
export const MAX_IMAGE_SIDE = 100_000;

/** Read the bytes of a path (or take the Buffer) and check they hold a supported format. */
async function readChecked(input: string | Buffer, name: string): Promise<{ buf: Buffer; format: ImageFormat }> {
  let buf: Buffer;
  if (typeof input === 'string') {
    let st;
    try {
      st = await stat(input);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ImageDecodeError(name, code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? String(e)})`, { cause: e });
    }
    if (st.isDirectory()) throw new ImageDecodeError(name, 'is a directory, not an image file');
    try {
      buf = await readFile(input);
    } catch (e) {
      throw new ImageDecodeError(name, `cannot read file (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
    }
  } else {
    buf = input;
  }
  if (buf.length === 0) throw new ImageDecodeError(name, 'empty file (0 bytes)');
  const f = sniffFormat(buf);
  if (f === null) {
    const ext = path.extname(name).toLowerCase();
    const claimed = ext ? ` (named ${ext} but its content has no ${ext.slice(1).toUpperCase()} signature)` : '';
    throw new ImageDecodeError(name, `not an image: unrecognised content${claimed}; expected PNG, JPEG, TIFF or WebP`);
  }
  if (typeof f === 'object') throw new ImageDecodeError(name, `unsupported image format ${f.unsupported}; convert to PNG, JPEG, TIFF or WebP`);
  return { buf, format: f };
}

function decodeFailure(name: string, format: ImageFormat, e: unknown): ImageDecodeError {
  const msg = e instanceof Error ? e.message.trim().replace(/\s+/g, ' ') : String(e);
  return new ImageDecodeError(name, `corrupt ${FORMAT_NAME[format]} (${msg})`, { cause: e });
}

function maxPixelsOf(opts: LoadOptions): number {
  const max = opts.maxPixels ?? MAX_IMAGE_PIXELS;
  if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxPixels must be a positive integer, got ${max}`);
  return max;
}

const megapixels = (n: number) => {
  const mp = n / 1e6;
  if (mp < 1) return `${n.toLocaleString('en-US')} pixels`;
  return `${mp >= 100 ? Math.round(mp).toLocaleString('en-US') : mp.toPrecision(2)} megapixels`;
};

/**
 * Reads the declared size from the header (nothing is decoded) and refuses images too large to decode
 * safely. Returns sharp's input options for the decode, with the same pixel limit as a second guard.
 */
async function checkDeclaredSize(buf: Buffer, name: string, format: ImageFormat, maxPixels: number): Promise<sharp.SharpOptions> {
  let meta: sharp.Metadata;
  try {
    meta = await sharp(buf, { failOn: 'truncated', limitInputPixels: false }).metadata();
  } catch (e) {
    throw decodeFailure(name, format, e);
  }
  const { width, height } = meta;
  const what = FORMAT_NAME[format];
  if (!width || !height || !Number.isFinite(width) || !Number.isFinite(height))
    throw new ImageDecodeError(name, `corrupt ${what} (the header declares no image size)`);
  if (width * height > maxPixels)
    throw new ImageDecodeError(name, `image too large: the ${what} header declares ${width}x${height} pixels (${megapixels(width * height)}), over the limit of ${megapixels(maxPixels)}`);
  if (Math.max(width, height) > MAX_IMAGE_SIDE)
    throw new ImageDecodeError(name, `image too large: the ${what} header declares ${width}x${height} pixels, a side over the limit of ${MAX_IMAGE_SIDE}`);
  return { failOn: 'truncated', limitInputPixels: maxPixels };
}

/** A sharp pipeline that yields 8-bit single-channel pixels: EXIF orientation applied, alpha flattened on black. */
function grayPipeline(buf: Buffer, input: sharp.SharpOptions): sharp.Sharp {
  return sharp(buf, input).autoOrient().flatten({ background: '#000000' }).toColourspace('b-w');
}

/** Decode to 8-bit grayscale at the image's own size. */
export async function loadGray8(input: string | Buffer, opts: LoadOptions = {}): Promise<GrayImage8> {
  const name = opts.name ?? (typeof input === 'string' ? input : '<buffer>');
  const maxPixels = maxPixelsOf(opts);
  const { buf, format } = await readChecked(input, name);
  const decodeOptions = await checkDeclaredSize(buf, name, format, maxPixels);
  try {
    const { data, info } = await grayPipeline(buf, decodeOptions).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 1) throw new Error(`expected 1 channel after grayscale conversion, got ${info.channels}`);
    return { width: info.width, height: info.height, data: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  } catch (e) {
    throw decodeFailure(name, format, e);
  }
}

/** Decode to grayscale Float32 in [0, 1] at the image's own size (for augmentation before resizing). */
export async function loadGray(input: string | Buffer, opts: LoadOptions = {}): Promise<GrayImage> {
  const g = await loadGray8(input, opts);
  return { width: g.width, height: g.height, data: u8ToFloat(g.data) };
}

export interface DecodeOptions extends LoadOptions {
  /** Output side: the result is size x size. */
  size: number;
  /** 'fill' (default) stretches the whole image to the square; 'cover' scales and centre-crops. */
  fit?: Fit;
  /** Output height when it differs from size (non-square working images); default size. */
  height?: number;
}

/** Decode, convert to grayscale, resize to size x size and normalise: Float32Array of size*size in [0, 1]. */
export async function decodeImage(input: string | Buffer, opts: DecodeOptions): Promise<Float32Array> {
  const g = await decodeImage8(input, opts);
  return u8ToFloat(g);
}

/** As decodeImage, but the 8-bit pixels (row-major, size*size). */
export async function decodeImage8(input: string | Buffer, opts: DecodeOptions): Promise<Uint8Array> {
  const name = opts.name ?? (typeof input === 'string' ? input : '<buffer>');
  const w = opts.size;
  const h = opts.height ?? opts.size;
  if (!Number.isInteger(w) || w < 1 || !Number.isInteger(h) || h < 1) throw new RangeError(`decodeImage: size must be a positive integer, got ${w}x${h}`);
  const maxPixels = maxPixelsOf(opts);
  const { buf, format } = await readChecked(input, name);
  const decodeOptions = await checkDeclaredSize(buf, name, format, maxPixels);
  try {
    const { data, info } = await grayPipeline(buf, decodeOptions)
      .resize(w, h, { fit: opts.fit ?? 'fill', position: 'centre', kernel: 'lanczos3' })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 1 || info.width !== w || info.height !== h) throw new Error(`unexpected output ${info.width}x${info.height}x${info.channels}`);
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch (e) {
    throw decodeFailure(name, format, e);
  }
}

/** Resize an in-memory 8-bit grayscale image with sharp (same kernel as decodeImage). */
export async function resizeGray8(img: GrayImage8, width: number, height: number, fit: Fit = 'fill'): Promise<Uint8Array> {
  const { data } = await sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.length), {
    raw: { width: img.width, height: img.height, channels: 1 },
  })
    .resize(width, height, { fit, position: 'centre', kernel: 'lanczos3' })
    .toColourspace('b-w')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (data.length !== width * height) throw new Error(`resizeGray8: got ${data.length} bytes for ${width}x${height}`);
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/** SHA-256 of the decoded grayscale pixels and the dimensions: equal for exact-duplicate content. */
export function pixelHash(img: GrayImage8): string {
  const h = createHash('sha256');
  h.update(`${img.width}x${img.height}:`);
  h.update(img.data);
  return h.digest('hex');
}

const INV255 = 1 / 255;

export function u8ToFloat(src: Uint8Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i] * INV255;
  return out;
}

/** Float [0, 1] to 8-bit (rounded, clamped). */
export function floatToU8(src: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const v = Math.round(src[i] * 255);
    out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}

/** Write a Float32 [0, 1] grayscale image as an 8-bit PNG. */
export async function writeGrayPng(file: string, data: ArrayLike<number>, width: number, height: number): Promise<void> {
  const u8 = floatToU8(data);
  await sharp(Buffer.from(u8.buffer, u8.byteOffset, u8.length), { raw: { width, height, channels: 1 } })
    .toColourspace('b-w')
    .png({ compressionLevel: 9 })
    .toFile(file);
}
