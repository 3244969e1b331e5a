// Batching: shapes, labels, epoch shuffles, partial batches, augmentation determinism, the file cache.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Batch, epochOrder, iterateBatches, numBatches } from '../src/data/batch.js';
import { ImageCache, MemorySource } from '../src/data/cache.js';
import { ImageDecodeError, decodeImage } from '../src/data/images.js';
import { Rng } from '../src/util/rng.js';

const S = 6;
/** Image i is constant i/100, so a batch row tells which item it came from. */
function source(n: number): MemorySource {
  return new MemorySource(S, Array.from({ length: n }, (_, i) => new Float32Array(S * S).fill(i / 100)));
}
const itemOf = (b: Batch, r: number): number => Math.round(b.x[r * S * S] * 100);

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) out.push(v);
  return out;
}

describe('iterateBatches', () => {
  const N = 23;
  const labels = Int32Array.from({ length: N }, (_, i) => i % 3);
  const indices = Array.from({ length: N }, (_, i) => i).filter((i) => i !== 4); // a split without item 4

  it('NCHW shapes, labels matching the rows, last partial batch kept', async () => {
    const bs = await collect(iterateBatches(source(N), labels, indices, { batchSize: 5, seed: 1 }));
    expect(bs.map((b) => b.size)).toEqual([5, 5, 5, 5, 2]);
    expect(numBatches(22, 5)).toBe(5);
    for (const [k, b] of bs.entries()) {
      expect(b.x).toBeInstanceOf(Float32Array);
      expect(b.x.length).toBe(b.size * 1 * S * S);
      expect(b.labels).toBeInstanceOf(Int32Array);
      expect(b.imageSize).toBe(S);
      expect(b.batchIndex).toBe(k);
      for (let r = 0; r < b.size; r++) {
        expect(itemOf(b, r)).toBe(b.indices[r]);
        expect(b.labels[r]).toBe(b.indices[r] % 3);
        // every pixel of the row is the item's value (no augmentation)
        const row = b.x.subarray(r * S * S, (r + 1) * S * S);
        expect(Math.min(...row)).toBe(Math.max(...row));
      }
    }
    const seen = bs.flatMap((b) => b.indices).sort((a, b) => a - b);
    expect(seen).toEqual(indices);
  });

  it('dropLast drops the partial batch', async () => {
    const bs = await collect(iterateBatches(source(N), labels, indices, { batchSize: 5, seed: 1, dropLast: true }));
    expect(bs.map((b) => b.size)).toEqual([5, 5, 5, 5]);
    expect(numBatches(22, 5, true)).toBe(4);
  });

  it('shuffles per epoch from the seed; shuffle: false keeps the given order', async () => {
    const order = async (seed: number, epoch: number, shuffle = true): Promise<number[]> =>
      (await collect(iterateBatches(source(N), labels, indices, { batchSize: 4, seed, epoch, shuffle }))).flatMap((b) => b.indices);
    const e0 = await order(5, 0);
    expect(await order(5, 0)).toEqual(e0);
    expect(e0).toEqual(epochOrder(indices, 5, 0));
    expect(await order(5, 1)).not.toEqual(e0);
    expect(await order(6, 0)).not.toEqual(e0);
    expect(await order(5, 3, false)).toEqual(indices);
  });

  it('augmentation is deterministic per (seed, epoch, batch), independent of prefetch', async () => {
    const r = new Rng(3);
    const imgs = Array.from({ length: 10 }, () => r.uniformArray(S * S, 0, 1));
    const src = new MemorySource(S, imgs);
    const lab = new Int32Array(10);
    const idx = Array.from({ length: 10 }, (_, i) => i);
    const run = (prefetch: boolean, epoch = 0): Promise<Batch[]> =>
      collect(iterateBatches(src, lab, idx, { batchSize: 4, seed: 9, epoch, augment: { brightness: 0.1 }, prefetch }));
    const a = await run(true);
    const b = await run(false);
    expect(a.map((x) => Array.from(x.x))).toEqual(b.map((x) => Array.from(x.x)));
    const c = await run(true, 1);
    expect(Array.from(c[0].x)).not.toEqual(Array.from(a[0].x));
    // Augmented rows differ from the plain images but stay in range.
    const plain = await collect(iterateBatches(src, lab, idx, { batchSize: 4, seed: 9 }));
    expect(Array.from(a[0].x)).not.toEqual(Array.from(plain[0].x));
    for (const bt of a) for (const v of bt.x) expect(v >= 0 && v <= 1).toBe(true);
  });

  it('an empty index list yields no batches; a bad batch size is rejected', async () => {
    expect(await collect(iterateBatches(source(3), labels, [], { batchSize: 4, seed: 1 }))).toEqual([]);
    await expect(collect(iterateBatches(source(3), labels, [0], { batchSize: 0, seed: 1 }))).rejects.toThrow(RangeError);
  });
});

describe('ImageCache', () => {
  let tmp: string;
  const files: string[] = [];
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), 'wgsl-nn-batch-'));
    await mkdir(path.join(tmp, 'img'));
    const r = new Rng(4);
    for (let i = 0; i < 7; i++) {
      const w = 20 + 3 * i;
      const h = 30 - i;
      const px = Buffer.from(Array.from({ length: w * h }, () => r.int(256)));
      const f = path.join(tmp, 'img', `f${i}.png`);
      await writeFile(f, await sharp(px, { raw: { width: w, height: h, channels: 1 } }).png().toBuffer());
      files.push(f);
    }
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('decodes once at the working size and at the final size; final equals decodeImage', async () => {
    const cache = new ImageCache(files, { size: 16 });
    expect(cache.workSize).toBe(20);
    const e = await cache.get(2);
    expect([e.work.width, e.work.height, e.work.data.length]).toEqual([20, 20, 400]);
    expect([e.final.width, e.final.height]).toEqual([16, 16]);
    expect(e.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(cache.get(2)).toBe(e); // cached: returned synchronously, same object
    const direct = await decodeImage(files[2], { size: 16 });
    let maxErr = 0;
    for (let i = 0; i < 256; i++) maxErr = Math.max(maxErr, Math.abs(e.final.data[i] / 255 - direct[i]));
    expect(maxErr).toBeLessThanOrEqual(1 / 255 + 1e-6);
    await cache.preload();
    expect(cache.bytes()).toBe(7 * (400 + 256));
  });

  it('batches from files: plain rows are the cached final images; augmentation works from the working image', async () => {
    const cache = new ImageCache(files, { size: 16 });
    const labels = Int32Array.from([0, 1, 0, 1, 0, 1, 0]);
    const bs = await collect(iterateBatches(cache, labels, [0, 1, 2, 3, 4, 5, 6], { batchSize: 3, seed: 2 }));
    expect(bs.map((b) => b.size)).toEqual([3, 3, 1]);
    for (const b of bs) {
      expect(b.x.length).toBe(b.size * 256);
      for (let r = 0; r < b.size; r++) {
        const fin = (await cache.get(b.indices[r])).final.data;
        for (let k = 0; k < 256; k += 17) expect(b.x[r * 256 + k]).toBeCloseTo(fin[k] / 255, 6);
        expect(b.labels[r]).toBe(labels[b.indices[r]]);
      }
    }
    const aug1 = await collect(iterateBatches(new ImageCache(files, { size: 16 }), labels, [0, 1, 2, 3, 4, 5, 6], { batchSize: 3, seed: 2, augment: {} }));
    const aug2 = await collect(iterateBatches(cache, labels, [0, 1, 2, 3, 4, 5, 6], { batchSize: 3, seed: 2, augment: {} }));
    expect(aug1.map((b) => Array.from(b.x))).toEqual(aug2.map((b) => Array.from(b.x)));
  });

  it('a corrupt file surfaces as ImageDecodeError from the iterator', async () => {
    const bad = path.join(tmp, 'img', 'bad.png');
    await writeFile(bad, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]));
    const cache = new ImageCache([files[0], bad, files[1]], { size: 8 });
    await expect(collect(iterateBatches(cache, new Int32Array(3), [0, 1, 2], { batchSize: 1, seed: 1, shuffle: false }))).rejects.toThrow(ImageDecodeError);
    await expect(cache.preload()).rejects.toThrow(/corrupt PNG.*bad\.png/);
  });

  // Speed belongs in bench/; this only checks that ten epochs of augmented batches assemble completely.
  it('assembles ten epochs of augmented batches (32 x 96x96, cached)', async () => {
    const r = new Rng(5);
    const imgs = Array.from({ length: 64 }, () => ({ w: r.uniformArray(120 * 120, 0, 1) }));
    const src = {
      size: 96,
      length: 64,
      get: (i: number) => ({ work: { width: 120, height: 120, data: imgs[i].w }, final: { width: 96, height: 96, data: imgs[i].w.subarray(0, 96 * 96) }, hash: '' }),
    };
    const idx = Array.from({ length: 64 }, (_, i) => i);
    await collect(iterateBatches(src, new Int32Array(64), idx, { batchSize: 32, seed: 1, augment: {} }));
    let n = 0;
    for (let e = 0; e < 10; e++)
      for await (const b of iterateBatches(src, new Int32Array(64), idx, { batchSize: 32, seed: 1, epoch: e, augment: {} })) {
        expect(b.x.every(Number.isFinite)).toBe(true);
        n += b.size;
      }
    expect(n).toBe(10 * 64);
  });
});
