// Decoded-image cache: each file is decoded once, kept as 8-bit at two sizes:
//   work:  a square working resolution (default round(1.25 * size)) that augmentation crops,
//          rotates and resamples down to `size`, so crops of 0.8 of the side are not upsampled;
//   final: size x size, resized by sharp (lanczos3), used when augmentation is off (val/test).
// plus the SHA-256 of the decoded pixels at the file's own size (for exact-duplicate grouping).
// Memory: (W*W + S*S) bytes per image, e.g. 1352 NEU images at S=64 -> 14 MB.

import { availableParallelism } from 'node:os';
import type { GraySource } from './augment.js';
import { type Fit, loadGray8, pixelHash, resizeGray8 } from './images.js';

export interface CachedImage {
  work: GraySource;
  final: GraySource;
  /** Pixel hash at the image's own size (empty for in-memory sources). */
  hash: string;
}

/** Where batches take their images from. `get` may be sync (in memory) or async (decoding). */
export interface ImageSource {
  /** Model input side S. */
  readonly size: number;
  readonly length: number;
  get(i: number): CachedImage | Promise<CachedImage>;
}

export interface ImageCacheOptions {
  /** Model input side S. */
  size: number;
  /** Working side = round(workScale * size); default 1.25. */
  workScale?: number;
  /** How non-square images become square: 'fill' (stretch, default) or 'cover' (centre crop). */
  fit?: Fit;
  /** Parallel decodes in preload(); default the number of CPUs (at most 8). */
  concurrency?: number;
}

export class ImageCache implements ImageSource {
  readonly size: number;
  readonly workSize: number;
  readonly fit: Fit;
  private readonly entries: (CachedImage | undefined)[];
  private readonly pending = new Map<number, Promise<CachedImage>>();
  private readonly concurrency: number;

  constructor(
    readonly paths: readonly string[],
    opts: ImageCacheOptions,
  ) {
    if (!Number.isInteger(opts.size) || opts.size < 1) throw new RangeError(`ImageCache: size must be a positive integer, got ${opts.size}`);
    this.size = opts.size;
    this.workSize = Math.max(opts.size, Math.round((opts.workScale ?? 1.25) * opts.size));
    this.fit = opts.fit ?? 'fill';
    this.entries = new Array(paths.length);
    this.concurrency = Math.max(1, opts.concurrency ?? Math.min(8, availableParallelism()));
  }

  get length(): number {
    return this.paths.length;
  }

  has(i: number): boolean {
    return this.entries[i] !== undefined;
  }

  get(i: number): CachedImage | Promise<CachedImage> {
    const e = this.entries[i];
    if (e) return e;
    let p = this.pending.get(i);
    if (!p) {
      p = this.decode(i).then(
        (r) => {
          this.entries[i] = r;
          this.pending.delete(i);
          return r;
        },
        (err) => {
          this.pending.delete(i);
          throw err;
        },
      );
      this.pending.set(i, p);
    }
    return p;
  }

  private async decode(i: number): Promise<CachedImage> {
    const g = await loadGray8(this.paths[i]);
    const hash = pixelHash(g);
    const W = this.workSize;
    const S = this.size;
    const [work, final] = await Promise.all([resizeGray8(g, W, W, this.fit), resizeGray8(g, S, S, this.fit)]);
    return { work: { width: W, height: W, data: work }, final: { width: S, height: S, data: final }, hash };
  }

  /** Decode the given items (default all) with bounded parallelism. */
  async preload(indices?: readonly number[], onProgress?: (done: number, total: number) => void): Promise<void> {
    const list = indices ?? this.paths.map((_, i) => i);
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      while (next < list.length) {
        const i = list[next++];
        await this.get(i);
        done++;
        onProgress?.(done, list.length);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, list.length) }, worker));
  }

  /** Pixel hashes of all items (decodes what is not cached yet). */
  async hashes(onProgress?: (done: number, total: number) => void): Promise<string[]> {
    await this.preload(undefined, onProgress);
    return this.entries.map((e) => e!.hash);
  }

  /** Bytes held by decoded images. */
  bytes(): number {
    let n = 0;
    for (const e of this.entries) if (e) n += e.work.data.byteLength + e.final.data.byteLength;
    return n;
  }
}

/** An in-memory source of size x size Float32 images (e.g. synthetic samples); work = final. */
export class MemorySource implements ImageSource {
  private readonly items: CachedImage[];
  constructor(
    readonly size: number,
    images: readonly Float32Array[],
  ) {
    this.items = images.map((data, i) => {
      if (data.length !== size * size) throw new RangeError(`MemorySource: image ${i} has ${data.length} values, expected ${size * size}`);
      const g = { width: size, height: size, data };
      return { work: g, final: g, hash: '' };
    });
  }
  get length(): number {
    return this.items.length;
  }
  get(i: number): CachedImage {
    return this.items[i];
  }
}
