// Hostile image inputs for the decode fuzz test (test/fuzz-images.test.ts): valid seed images of every
// supported format and awkward variant, made with sharp from seeded pixels, and a seeded mutator that
// breaks them in the ways real files break (bit rot, truncation, wrong headers) and in the ways an
// attacker would (declared sizes far beyond the data, decompression bombs, chunks re-checksummed so the
// decoder gets past its integrity checks). Everything is deterministic from the seed.
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { Rng } from '../src/util/rng.js';

export interface FuzzInput {
  /** What the input is: the seed's name and the mutation, e.g. 'png-gray16/bitflip'. */
  name: string;
  bytes: Buffer;
}

export type SeedFormat = 'png' | 'jpeg' | 'tiff' | 'webp';

export interface SeedImage extends FuzzInput {
  format: SeedFormat;
  /** Relative share of the mutants made from this seed (default 1). */
  weight?: number;
}

// ------------------------------------------------------------------ seed images

/** A deterministic test pattern: gradient, noise and a dark blob, `channels` interleaved 8-bit channels. */
export function patternPixels(width: number, height: number, channels: number, rng: Rng): Buffer {
  const px = Buffer.alloc(width * height * channels);
  const cx = rng.uniform(0.2, 0.8) * width;
  const cy = rng.uniform(0.2, 0.8) * height;
  const r = Math.max(1, Math.min(width, height) / 5);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const blob = Math.hypot(x - cx, y - cy) < r ? -90 : 0;
      for (let c = 0; c < channels; c++) {
        const base = 60 + (120 * x) / Math.max(1, width - 1) + (60 * y) / Math.max(1, height - 1) + 25 * c;
        const v = c === 3 ? 40 + ((x * 7 + y * 13) % 216) : base + blob + rng.uniform(-12, 12);
        px[(y * width + x) * channels + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  return px;
}

function raw(width: number, height: number, channels: 1 | 2 | 3 | 4, rng: Rng): sharp.Sharp {
  return sharp(patternPixels(width, height, channels, rng), { raw: { width, height, channels } });
}

/**
 * The seed images: PNG (8/16-bit grey, palette, RGB interlaced, RGBA, grey+alpha, 1x1, 10000x1, 1x600),
 * JPEG (grey, RGB progressive, CMYK, EXIF-rotated, 4:2:0), TIFF (none/LZW/deflate/JPEG/packbits
 * compression, 16-bit, 1-bit, tiled, RGBA), WebP (lossy, lossless, with alpha). All small, so that
 * decoding a mutant is fast.
 */
export async function makeSeedImages(seed: number): Promise<SeedImage[]> {
  const rng = new Rng(seed);
  const g16 = (w: number, h: number) => {
    const src = patternPixels(w, h, 1, rng);
    const a = new Uint16Array(w * h);
    for (let i = 0; i < a.length; i++) a[i] = src[i] * 257 + (i % 251);
    return sharp(a, { raw: { width: w, height: h, channels: 1 } }).toColourspace('grey16');
  };
  const seeds: [string, SeedFormat, Promise<Buffer>][] = [
    ['png-gray8', 'png', raw(40, 32, 1, rng).png().toBuffer()],
    ['png-gray16', 'png', g16(36, 28).png().toBuffer()],
    ['png-palette', 'png', raw(40, 30, 3, rng).png({ palette: true, colours: 16, dither: 0 }).toBuffer()],
    ['png-rgb-interlaced', 'png', raw(33, 27, 3, rng).png({ progressive: true }).toBuffer()],
    ['png-rgba', 'png', raw(32, 32, 4, rng).png().toBuffer()],
    ['png-gray-alpha', 'png', raw(30, 34, 2, rng).png().toBuffer()],
    ['png-1x1', 'png', raw(1, 1, 1, rng).png().toBuffer()],
    ['png-10000x1', 'png', raw(10000, 1, 1, rng).png().toBuffer()],
    ['png-1x600', 'png', raw(1, 600, 1, rng).png().toBuffer()],
    ['jpeg-gray', 'jpeg', raw(40, 32, 1, rng).jpeg({ quality: 85 }).toBuffer()],
    ['jpeg-rgb-progressive', 'jpeg', raw(48, 40, 3, rng).jpeg({ quality: 80, progressive: true }).toBuffer()],
    ['jpeg-cmyk', 'jpeg', raw(40, 32, 3, rng).toColourspace('cmyk').jpeg({ quality: 85 }).toBuffer()],
    ['jpeg-exif-rotated', 'jpeg', raw(40, 24, 3, rng).jpeg({ quality: 85 }).withMetadata({ orientation: 6 }).toBuffer()],
    ['jpeg-420', 'jpeg', raw(37, 29, 3, rng).jpeg({ quality: 60, chromaSubsampling: '4:2:0' }).toBuffer()],
    ['tiff-gray-none', 'tiff', raw(32, 24, 1, rng).tiff({ compression: 'none' }).toBuffer()],
    ['tiff-rgb-lzw', 'tiff', raw(32, 24, 3, rng).tiff({ compression: 'lzw', predictor: 'horizontal' }).toBuffer()],
    ['tiff-gray16-deflate', 'tiff', g16(30, 20).tiff({ compression: 'deflate' }).toBuffer()],
    ['tiff-rgb-jpeg', 'tiff', raw(32, 32, 3, rng).tiff({ compression: 'jpeg', quality: 80 }).toBuffer()],
    ['tiff-1bit', 'tiff', raw(40, 20, 1, rng).tiff({ compression: 'none', bitdepth: 1 }).toBuffer()],
    ['tiff-tiled-packbits', 'tiff', raw(40, 40, 1, rng).tiff({ compression: 'packbits', tile: true, tileWidth: 16, tileHeight: 16 }).toBuffer()],
    ['tiff-rgba', 'tiff', raw(24, 20, 4, rng).tiff({ compression: 'lzw' }).toBuffer()],
    ['webp-lossy', 'webp', raw(40, 32, 3, rng).webp({ quality: 75 }).toBuffer()],
    ['webp-lossless', 'webp', raw(36, 30, 3, rng).webp({ lossless: true }).toBuffer()],
    ['webp-alpha', 'webp', raw(32, 28, 4, rng).webp({ quality: 80, alphaQuality: 90 }).toBuffer()],
  ];
  // CMYK JPEG costs ~100 ms a decode (an ICC transform to sRGB), 30x the others: fewer mutants of it.
  const weight: Record<string, number> = { 'jpeg-cmyk': 0.2 };
  return Promise.all(seeds.map(async ([name, format, bytes]) => ({ name, format, bytes: await bytes, weight: weight[name] ?? 1 })));
}

// ------------------------------------------------------------------ PNG building blocks

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export function pngChunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A PNG from an IHDR description and the (already compressed) IDAT payload. */
export function buildPng(width: number, height: number, idat: Uint8Array, bitDepth = 8, colourType = 0): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width >>> 0, 0);
  ihdr.writeUInt32BE(height >>> 0, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colourType;
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', idat), pngChunk('IEND', new Uint8Array(0))]);
}

/**
 * A decompression bomb: a valid grey PNG of width x height black pixels whose file is tiny (zeros deflate
 * about 1000:1). `height` rows are compressed in one go, so keep width * height to some 10^8.
 */
export function pngBomb(width: number, height: number): Buffer {
  return buildPng(width, height, deflateSync(Buffer.alloc((width + 1) * height), { level: 9 }));
}

interface PngChunkAt {
  type: string;
  /** Offset of the length field. */
  offset: number;
  length: number;
}

/** The chunks of a PNG (stops at the first chunk that runs past the end). */
export function pngChunks(png: Buffer): PngChunkAt[] {
  const out: PngChunkAt[] = [];
  let at = 8;
  while (at + 12 <= png.length) {
    const length = png.readUInt32BE(at);
    if (at + 12 + length > png.length) break;
    out.push({ type: png.toString('latin1', at + 4, at + 8), offset: at, length });
    at += 12 + length;
  }
  return out;
}

/** Recomputes the CRC of the chunk at `c` (after its data were changed), so decoders accept it. */
function fixCrc(png: Buffer, c: PngChunkAt): void {
  png.writeUInt32BE(crc32(png.subarray(c.offset + 4, c.offset + 8 + c.length)), c.offset + 8 + c.length);
}

// ------------------------------------------------------------------ mutations

/** Sizes a hostile header may declare. */
const HUGE_DIMENSIONS = [0, 1, 65535, 65536, 100000, 1 << 24, 0x7fffffff, 0xffffffff];
const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe, 0x20];

const MAGICS: Buffer[] = [
  PNG_SIGNATURE,
  Buffer.from([0xff, 0xd8, 0xff]),
  Buffer.from('II*\0', 'latin1'),
  Buffer.from('MM\0*', 'latin1'),
  Buffer.from('RIFF\0\0\0\0WEBP', 'latin1'),
  Buffer.from('GIF89a', 'latin1'),
  Buffer.from('BM', 'latin1'),
  Buffer.from('\0\0\0\x18ftypavif', 'latin1'),
  Buffer.from('%PDF-1.4', 'latin1'),
  Buffer.from('<html>', 'latin1'),
];

type Mutator = (bytes: Buffer, rng: Rng, seeds: SeedImage[], seed: SeedImage) => Buffer;

const pick = <T>(rng: Rng, a: readonly T[]): T => a[rng.int(a.length)];

function flipBits(bytes: Buffer, rng: Rng, count: number, within = bytes.length): Buffer {
  const b = Buffer.from(bytes);
  const n = Math.min(within, b.length);
  if (n === 0) return b;
  for (let i = 0; i < count; i++) b[rng.int(n)] ^= 1 << rng.int(8);
  return b;
}

function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(256);
  return b;
}

/** Sets width and height in the PNG IHDR (checksum fixed) or a JPEG SOF marker. */
function declareSize(bytes: Buffer, rng: Rng, format: SeedFormat): Buffer | null {
  const w = pick(rng, HUGE_DIMENSIONS);
  const h = rng.next() < 0.3 ? w : pick(rng, HUGE_DIMENSIONS);
  const b = Buffer.from(bytes);
  if (format === 'png') {
    const ihdr = pngChunks(b).find((c) => c.type === 'IHDR');
    if (!ihdr) return null;
    b.writeUInt32BE(w >>> 0, ihdr.offset + 8);
    b.writeUInt32BE(h >>> 0, ihdr.offset + 12);
    fixCrc(b, ihdr);
    return b;
  }
  if (format === 'jpeg') {
    // SOFn (C0..CF except C4, C8, CC): FF Cn len(2) precision(1) height(2) width(2)
    for (let i = 2; i + 9 < b.length; i++)
      if (b[i] === 0xff && b[i + 1] >= 0xc0 && b[i + 1] <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(b[i + 1])) {
        b.writeUInt16BE(h & 0xffff, i + 5);
        b.writeUInt16BE(w & 0xffff, i + 7);
        return b;
      }
    return null;
  }
  if (format === 'tiff') {
    // First IFD: tags 256 (ImageWidth) and 257 (ImageLength), SHORT or LONG, value in the entry.
    const le = b[0] === 0x49;
    const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const ifd = u32(4);
    if (ifd + 2 > b.length) return null;
    const n = u16(ifd);
    for (let e = 0; e < n && ifd + 2 + 12 * (e + 1) <= b.length; e++) {
      const at = ifd + 2 + 12 * e;
      const tag = u16(at);
      if (tag !== 256 && tag !== 257) continue;
      const v = tag === 256 ? w : h;
      if (u16(at + 2) === 3) {
        if (le) b.writeUInt16LE(v & 0xffff, at + 8);
        else b.writeUInt16BE(v & 0xffff, at + 8);
      } else if (le) b.writeUInt32LE(v >>> 0, at + 8);
      else b.writeUInt32BE(v >>> 0, at + 8);
    }
    return b;
  }
  // WebP: the VP8X canvas (24-bit width-1, height-1) or the VP8L header (14-bit width-1, height-1).
  const chunk = b.toString('latin1', 12, 16);
  if (chunk === 'VP8X' && b.length >= 30) {
    b.writeUIntLE((w - 1) & 0xffffff, 24, 3);
    b.writeUIntLE((h - 1) & 0xffffff, 27, 3);
    return b;
  }
  if (chunk === 'VP8L' && b.length >= 25) {
    const bits = ((w - 1) & 0x3fff) | (((h - 1) & 0x3fff) << 14) | (b.readUInt32LE(21) & 0xf0000000);
    b.writeUInt32LE(bits >>> 0, 21);
    return b;
  }
  if (chunk === 'VP8 ' && b.length >= 30) {
    b.writeUInt16LE(w & 0x3fff, 26);
    b.writeUInt16LE(h & 0x3fff, 28);
    return b;
  }
  return null;
}

const MUTATORS: [string, number, Mutator][] = [
  ['bitflip', 6, (b, r) => flipBits(b, r, 1 + r.int(8))],
  ['bitflip-header', 5, (b, r) => flipBits(b, r, 1 + r.int(3), 96)],
  ['byte-set', 3, (b, r) => {
    const c = Buffer.from(b);
    for (let i = 1 + r.int(4); i > 0; i--) c[r.int(c.length)] = pick(r, INTERESTING_BYTES);
    return c;
  }],
  ['truncate', 5, (b, r) => b.subarray(0, r.int(b.length))],
  ['truncate-header', 2, (b, r) => b.subarray(0, r.int(Math.min(b.length, 80)))],
  ['wrong-magic', 2, (b, r) => {
    const m = pick(r, MAGICS);
    return Buffer.concat([m, b.subarray(Math.min(b.length, r.next() < 0.5 ? m.length : 0))]);
  }],
  ['random-header', 1, (b, r) => Buffer.concat([randomBytes(r, 1 + r.int(16)), b.subarray(16)])],
  ['garbage', 1, (_b, r) => randomBytes(r, r.int(400))],
  ['insert', 2, (b, r) => {
    const at = r.int(b.length + 1);
    return Buffer.concat([b.subarray(0, at), randomBytes(r, 1 + r.int(64)), b.subarray(at)]);
  }],
  ['delete', 2, (b, r) => {
    const at = r.int(b.length);
    return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + r.int(64)))]);
  }],
  ['duplicate', 1, (b, r) => {
    const at = r.int(b.length);
    const len = 1 + r.int(Math.min(256, b.length - at));
    return Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]);
  }],
  ['append-junk', 1, (b, r) => Buffer.concat([b, randomBytes(r, 1 + r.int(128))])],
  ['splice', 2, (b, r, seeds) => {
    const other = pick(r, seeds).bytes;
    return Buffer.concat([b.subarray(0, r.int(b.length)), other.subarray(r.int(other.length))]);
  }],
  ['declared-size', 4, (b, r, _s, seed) => declareSize(b, r, seed.format) ?? flipBits(b, r, 2, 64)],
  ['png-chunk-rechecksummed', 4, (b, r, _s, seed) => {
    // Corrupt a chunk's data and fix its CRC: the decoder's deeper code (IHDR fields, zlib, filters,
    // palette lookups) sees the damage instead of a checksum error.
    if (seed.format !== 'png') return flipBits(b, r, 1 + r.int(4));
    const c = Buffer.from(b);
    const chunks = pngChunks(c).filter((k) => k.length > 0);
    if (!chunks.length) return c;
    const k = pick(r, chunks);
    for (let i = 1 + r.int(k.type === 'IHDR' ? 2 : 6); i > 0; i--) {
      const at = k.offset + 8 + r.int(k.length);
      c[at] = r.next() < 0.5 ? c[at] ^ (1 << r.int(8)) : pick(r, INTERESTING_BYTES);
    }
    fixCrc(c, k);
    return c;
  }],
  ['png-drop-chunk', 1, (b, r, _s, seed) => {
    if (seed.format !== 'png') return b.subarray(0, Math.max(0, b.length - 1 - r.int(16)));
    const chunks = pngChunks(b);
    const k = pick(r, chunks);
    return Buffer.concat([b.subarray(0, k.offset), b.subarray(k.offset + 12 + k.length)]);
  }],
];

const TOTAL_WEIGHT = MUTATORS.reduce((n, [, w]) => n + w, 0);

function drawWeighted<T>(rng: Rng, items: readonly T[], weight: (t: T) => number, total: number): T {
  let x = rng.uniform(0, total);
  for (const item of items) if ((x -= weight(item)) < 0) return item;
  return items[items.length - 1];
}

export interface Mutant extends FuzzInput {
  mutation: string;
  seed: SeedImage;
}

/** `count` mutants of the seeds, deterministic for `seed`: seeds and mutators drawn by weight. */
export function* mutants(seeds: SeedImage[], count: number, seed: number): Generator<Mutant> {
  const rng = new Rng(seed);
  const seedWeight = (s: SeedImage) => s.weight ?? 1;
  const seedTotal = seeds.reduce((n, s) => n + seedWeight(s), 0);
  for (let i = 0; i < count; i++) {
    const s = drawWeighted(rng, seeds, seedWeight, seedTotal);
    const m = drawWeighted(rng, MUTATORS, (x) => x[1], TOTAL_WEIGHT);
    let bytes = m[2](s.bytes, rng, seeds, s);
    // Now and then a second mutation on top of the first.
    if (rng.next() < 0.15) bytes = flipBits(bytes, rng, 1 + rng.int(4));
    yield { name: `${s.name}/${m[0]}#${i}`, mutation: m[0], seed: s, bytes };
  }
}

function withChunkAfterIhdr(png: Buffer, type: string, data: Uint8Array): Buffer {
  const ihdr = pngChunks(png)[0];
  const at = ihdr.offset + 12 + ihdr.length;
  return Buffer.concat([png.subarray(0, at), pngChunk(type, data), png.subarray(at)]);
}

/** Hand-made hostile inputs that random mutation would rarely produce. */
export function craftedInputs(): FuzzInput[] {
  const idat = deflateSync(Buffer.alloc(9 * 8)); // the pixel data of an 8x8 grey PNG (a filter byte per row)
  return [
    { name: 'empty', bytes: Buffer.alloc(0) },
    { name: 'png-signature-only', bytes: Buffer.from(PNG_SIGNATURE) },
    { name: 'png-ihdr-100000x100000', bytes: buildPng(100000, 100000, idat) },
    { name: 'png-ihdr-2^31-1x2^31-1', bytes: buildPng(0x7fffffff, 0x7fffffff, idat) },
    { name: 'png-ihdr-0x0', bytes: buildPng(0, 0, idat) },
    { name: 'png-ihdr-1x100000000', bytes: buildPng(1, 100_000_000, idat) },
    { name: 'png-ihdr-16bit-rgba-60000x60000', bytes: buildPng(60000, 60000, idat, 16, 6) },
    { name: 'png-ihdr-bad-depth', bytes: buildPng(8, 8, idat, 7, 0) },
    { name: 'png-ihdr-bad-colour-type', bytes: buildPng(8, 8, idat, 8, 5) },
    { name: 'png-palette-without-plte', bytes: buildPng(8, 8, idat, 8, 3) },
    { name: 'png-bomb-12000x12000', bytes: pngBomb(12000, 12000) },
    { name: 'png-bomb-8000x8000-under-the-limit', bytes: pngBomb(8000, 8000) },
    { name: 'png-iccp-bomb', bytes: withChunkAfterIhdr(buildPng(8, 8, idat), 'iCCP', Buffer.concat([Buffer.from('bomb\0\0', 'latin1'), deflateSync(Buffer.alloc(50_000_000))])) },
    { name: 'png-ztxt-bomb', bytes: withChunkAfterIhdr(buildPng(8, 8, idat), 'zTXt', Buffer.concat([Buffer.from('Comment\0\0', 'latin1'), deflateSync(Buffer.alloc(50_000_000, 0x41))])) },
    { name: 'png-bomb-1x3000000', bytes: pngBomb(1, 3_000_000) },
    { name: 'jpeg-soi-only', bytes: Buffer.from([0xff, 0xd8, 0xff]) },
    { name: 'jpeg-soi-eoi', bytes: Buffer.from([0xff, 0xd8, 0xff, 0xd9]) },
    { name: 'tiff-header-only', bytes: Buffer.from('II*\0\x08\0\0\0', 'latin1') },
    { name: 'tiff-ifd-loop', bytes: Buffer.from('II*\0\x08\0\0\0\0\0\x08\0\0\0', 'latin1') },
    { name: 'webp-riff-only', bytes: Buffer.from('RIFF\x04\0\0\0WEBP', 'latin1') },
    { name: 'webp-riff-size-huge', bytes: Buffer.from('RIFF\xff\xff\xff\xffWEBPVP8 \0\0\0\0', 'latin1') },
    { name: 'gif', bytes: Buffer.from('GIF89a\x01\0\x01\0\0\0\0;', 'latin1') },
    { name: 'bmp', bytes: Buffer.concat([Buffer.from('BM', 'latin1'), Buffer.alloc(60)]) },
    { name: 'text-named-png', bytes: Buffer.from('this is not an image\n') },
    { name: 'html', bytes: Buffer.from('<!doctype html><html><body>404</body></html>') },
    { name: 'svg', bytes: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"/>') },
  ];
}
