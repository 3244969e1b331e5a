// Image decoding: every supported format, grayscale conversion, resizing, and the error cases.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageDecodeError, decodeImage, decodeImage8, isImageFile, loadGray, loadGray8, pixelHash, sniffFormat, writeGrayPng } from '../src/data/images.js';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'images');
const W = 16;
const H = 12;
const expected = (x: number, y: number): number => 12 * x + 6 * y;

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'wgsl-nn-images-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function decodeError(p: Promise<unknown>): Promise<ImageDecodeError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ImageDecodeError);
    return e as ImageDecodeError;
  }
  throw new Error('expected an ImageDecodeError');
}

describe('decoding', () => {
  it.each([
    ['gradient.png', 0],
    ['gradient.tif', 0],
    ['gradient.webp', 0],
    ['gradient.jpg', 3],
  ])('%s decodes to the 16x12 gradient (max error %i grey levels)', async (file, tol) => {
    const g = await loadGray8(path.join(FIX, file));
    expect([g.width, g.height]).toEqual([W, H]);
    let maxErr = 0;
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) maxErr = Math.max(maxErr, Math.abs(g.data[y * W + x] - expected(x, y)));
    expect(maxErr).toBeLessThanOrEqual(tol);
  });

  it('loadGray gives Float32 in [0, 1] equal to bytes / 255, from a path or a Buffer', async () => {
    const f = await loadGray(path.join(FIX, 'gradient.png'));
    expect(f.data).toBeInstanceOf(Float32Array);
    expect(f.data[0]).toBe(0);
    expect(f.data[W * H - 1]).toBeCloseTo(expected(W - 1, H - 1) / 255, 6);
    const fromBuf = await loadGray(await readFile(path.join(FIX, 'gradient.png')));
    expect(Array.from(fromBuf.data)).toEqual(Array.from(f.data));
  });

  it('converts colour to grayscale by sRGB luminance (libvips b-w: red 127, green 220, blue 76)', async () => {
    const g = await loadGray8(path.join(FIX, 'rgb.png'));
    expect([g.width, g.height]).toEqual([4, 2]);
    const want = [255, 0, 127, 220, 76, 128, 255, 0];
    Array.from(g.data).forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThanOrEqual(1));
  });

  it('decodes 16-bit grayscale PNG to 8-bit and RGBA by flattening', async () => {
    // Build a 16-bit PNG through sharp's grey16 colourspace from an 8-bit ramp.
    const ramp = Buffer.from(Array.from({ length: 16 }, (_, i) => i * 16));
    const p16 = await sharp(ramp, { raw: { width: 4, height: 4, channels: 1 } }).toColourspace('grey16').png().toBuffer();
    const meta = await sharp(p16).metadata();
    expect(meta.depth).toBe('ushort');
    const g = await loadGray8(p16, { name: 'ramp16.png' });
    for (let i = 0; i < 16; i++) expect(Math.abs(g.data[i] - i * 16)).toBeLessThanOrEqual(1);
    const rgba = await sharp({ create: { width: 2, height: 2, channels: 4, background: { r: 255, g: 255, b: 255, alpha: 1 } } }).png().toBuffer();
    const g2 = await loadGray8(rgba);
    expect(Array.from(g2.data)).toEqual([255, 255, 255, 255]);
  });

  it('decodeImage resizes to size x size and normalises to [0, 1]', async () => {
    for (const file of ['gradient.png', 'gradient.jpg', 'gradient.tif', 'gradient.webp']) {
      const x = await decodeImage(path.join(FIX, file), { size: 8 });
      expect(x).toBeInstanceOf(Float32Array);
      expect(x.length).toBe(64);
      for (const v of x) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
      }
      // Left-to-right and top-to-bottom increasing, like the source gradient.
      expect(x[7]).toBeGreaterThan(x[0]);
      expect(x[56]).toBeGreaterThan(x[0]);
      expect(x[63]).toBeGreaterThan(0.6);
    }
  });

  it("fit 'cover' crops the centre, 'fill' stretches", async () => {
    // 8x4: left half black, right half white. cover -> the central 4x4 (half black, half white);
    // a 2x1 image of [0, 255] stretched by fill keeps the two halves.
    const px = Buffer.alloc(32);
    for (let y = 0; y < 4; y++) for (let x = 4; x < 8; x++) px[y * 8 + x] = 255;
    const buf = await sharp(px, { raw: { width: 8, height: 4, channels: 1 } }).png().toBuffer();
    const fill = await decodeImage8(buf, { size: 4, fit: 'fill' });
    const cover = await decodeImage8(buf, { size: 4, fit: 'cover' });
    expect(fill.length).toBe(16);
    expect(cover.length).toBe(16);
    expect(cover[0]).toBe(0);
    expect(cover[3]).toBe(255);
    expect(fill[0]).toBeLessThan(10);
    expect(fill[3]).toBeGreaterThan(245);
    // Different geometry: with fill, column 1 samples inside the black half at 1/4 of the width.
    const wide = Buffer.alloc(16 * 4);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 16; x++) wide[y * 16 + x] = x < 4 ? 0 : 255;
    const wbuf = await sharp(wide, { raw: { width: 16, height: 4, channels: 1 } }).png().toBuffer();
    const wf = await decodeImage8(wbuf, { size: 4, fit: 'fill' });
    const wc = await decodeImage8(wbuf, { size: 4, fit: 'cover' });
    expect(wf[0]).toBeLessThan(20); // the black quarter survives the stretch
    expect(wc[0]).toBe(255); // the centre crop (x 6..9) is all white
  });

  it('pixelHash is equal for equal pixels in different encodings and differs otherwise', async () => {
    const a = await loadGray8(path.join(FIX, 'gradient.png'));
    const b = await loadGray8(path.join(FIX, 'gradient.tif'));
    expect(pixelHash(a)).toBe(pixelHash(b));
    const c = { ...a, data: a.data.slice() };
    c.data[17] ^= 1;
    expect(pixelHash(a)).not.toBe(pixelHash(c));
    expect(pixelHash({ width: 12, height: 16, data: a.data })).not.toBe(pixelHash(a)); // same bytes, other shape
  });

  it('writeGrayPng round-trips 8-bit values', async () => {
    const f = new Float32Array([0, 0.25, 0.5, 1, 1.2, -0.1]);
    const p = path.join(tmp, 'rt.png');
    await writeGrayPng(p, f, 3, 2);
    const g = await loadGray8(p);
    expect(Array.from(g.data)).toEqual([0, 64, 128, 255, 255, 0]);
    expect((await sharp(p).metadata()).channels).toBe(1);
  });

  it('isImageFile and sniffFormat', () => {
    expect(isImageFile('a/B.PNG')).toBe(true);
    expect(isImageFile('x.jpeg')).toBe(true);
    expect(isImageFile('x.tiff')).toBe(true);
    expect(isImageFile('x.webp')).toBe(true);
    expect(isImageFile('x.bmp')).toBe(false);
    expect(isImageFile('notes.txt')).toBe(false);
    expect(sniffFormat(Buffer.from('GIF89a'))).toEqual({ unsupported: 'GIF' });
    expect(sniffFormat(Buffer.from('hello'))).toBeNull();
  });
});

describe('decode errors', () => {
  it('truncated PNG -> "corrupt PNG" naming the file', async () => {
    const file = path.join(FIX, 'truncated.png');
    const e = await decodeError(decodeImage(file, { size: 8 }));
    expect(e.message).toMatch(/^corrupt PNG \(.+\): /);
    expect(e.message).toContain(file);
    expect(e.file).toBe(file);
  });

  it('truncated JPEG from a Buffer -> "corrupt JPEG" with the given name', async () => {
    const buf = await readFile(path.join(FIX, 'gradient.jpg'));
    const e = await decodeError(loadGray(buf.subarray(0, 120), { name: 'cam1/frame.jpg' }));
    expect(e.message).toMatch(/^corrupt JPEG/);
    expect(e.message).toContain('cam1/frame.jpg');
  });

  it('empty file', async () => {
    const e = await decodeError(decodeImage(path.join(FIX, 'empty.png'), { size: 8 }));
    expect(e.message).toMatch(/^empty file \(0 bytes\): .*empty\.png$/);
  });

  it('a text file named .png', async () => {
    const e = await decodeError(loadGray(path.join(FIX, 'text.png')));
    expect(e.message).toContain('not an image');
    expect(e.message).toContain('named .png but its content has no PNG signature');
    expect(e.message).toContain('text.png');
  });

  it('BMP is reported as unsupported', async () => {
    const e = await decodeError(loadGray(path.join(FIX, 'tiny.bmp')));
    expect(e.message).toMatch(/^unsupported image format BMP/);
  });

  it('missing path and a directory', async () => {
    const missing = path.join(tmp, 'nope', 'x.png');
    const e1 = await decodeError(decodeImage(missing, { size: 8 }));
    expect(e1.message).toBe(`file not found: ${missing}`);
    const e2 = await decodeError(loadGray(tmp));
    expect(e2.message).toContain('is a directory');
  });

  it('corrupt bytes after a valid PNG signature', async () => {
    const png = await readFile(path.join(FIX, 'gradient.png'));
    const bad = Buffer.from(png);
    for (let i = 40; i < bad.length - 12; i++) bad[i] ^= 0x5a; // scramble the IDAT payload
    const p = path.join(tmp, 'scrambled.png');
    await writeFile(p, bad);
    const e = await decodeError(loadGray(p));
    expect(e.message).toMatch(/^corrupt PNG/);
  });
});
