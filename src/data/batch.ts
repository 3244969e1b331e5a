// Mini-batches for training and evaluation: x as NCHW Float32 [B, 1, S, S], labels as Int32 [B].
//
// Order: the index list is shuffled per epoch with Rng(mixSeed(seed, epoch)) (or kept as given).
// Augmentation: batch b of epoch e draws its transforms from Rng(mixSeed(seed, epoch, b, 1)),
// so the result does not depend on decoding order or prefetch timing. The last partial batch is
// kept unless dropLast. While the caller works on batch b, batch b+1 is assembled (its images
// decoded asynchronously when the source decodes lazily).

import { Rng } from '../util/rng.js';
import { type AugmentOptions, DEFAULT_AUGMENT, applyAugment, resizeBilinear, sampleAugmentParams } from './augment.js';
import type { CachedImage, ImageSource } from './cache.js';
import { mixSeed } from './split.js';

export interface Batch {
  /** [B, 1, S, S] row-major. */
  x: Float32Array;
  labels: Int32Array;
  /** Dataset indices of the batch rows. */
  indices: number[];
  /** B (the last batch may be smaller than batchSize). */
  size: number;
  /** S. */
  imageSize: number;
  /** Position of the batch in the epoch. */
  batchIndex: number;
}

export interface BatchOptions {
  batchSize: number;
  /** Seed of the shuffle and the augmentation. */
  seed: number;
  /** Epoch number (changes the order and the augmentation). Default 0. */
  epoch?: number;
  /** Shuffle the index list each epoch. Default true. */
  shuffle?: boolean;
  /** Augmentation options, or false/undefined for none. */
  augment?: AugmentOptions | false | null;
  /** Drop a last partial batch. Default false (kept). */
  dropLast?: boolean;
  /** Assemble batch b+1 while batch b is in use. Default true. */
  prefetch?: boolean;
}

export function numBatches(n: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** The index order of one epoch. */
export function epochOrder(indices: readonly number[], seed: number, epoch = 0, shuffle = true): number[] {
  const order = indices.slice();
  if (shuffle) new Rng(mixSeed(seed, epoch)).shuffle(order);
  return order;
}

/** Write one image (final size, or augmented from the working image) into x at row `row`. */
function fillRow(x: Float32Array, row: number, img: CachedImage, S: number, aug: AugmentOptions | null, rng: Rng | null): void {
  const off = row * S * S;
  if (aug && rng) {
    const p = sampleAugmentParams(rng, img.work.width, img.work.height, aug);
    applyAugment(img.work, S, p, x, off, aug.fill ?? DEFAULT_AUGMENT.fill);
    return;
  }
  const f = img.final;
  if (f.width === S && f.height === S) {
    const d = f.data;
    if (d instanceof Float32Array) x.set(d, off);
    else for (let i = 0; i < d.length; i++) x[off + i] = d[i] * (1 / 255);
  } else {
    resizeBilinear(f, S, x, off);
  }
}

/** Assemble one batch from explicit dataset indices. */
export async function assembleBatch(
  source: ImageSource,
  labels: ArrayLike<number>,
  idx: readonly number[],
  opts: { augment?: AugmentOptions | false | null; rng?: Rng | null; batchIndex?: number } = {},
): Promise<Batch> {
  const S = source.size;
  const B = idx.length;
  const got = idx.map((i) => source.get(i));
  const imgs: CachedImage[] = got.some((g) => g instanceof Promise) ? await Promise.all(got) : (got as CachedImage[]);
  const x = new Float32Array(B * S * S);
  const lab = new Int32Array(B);
  const aug = opts.augment ? opts.augment : null;
  for (let r = 0; r < B; r++) {
    fillRow(x, r, imgs[r], S, aug, opts.rng ?? null);
    lab[r] = labels[idx[r]];
  }
  return { x, labels: lab, indices: idx.slice(), size: B, imageSize: S, batchIndex: opts.batchIndex ?? 0 };
}

/** Batches of one epoch. `labels[i]` is the label of dataset item i; `indices` selects the items (a split). */
export async function* iterateBatches(
  source: ImageSource,
  labels: ArrayLike<number>,
  indices: readonly number[],
  opts: BatchOptions,
): AsyncGenerator<Batch, void, undefined> {
  const bs = opts.batchSize;
  if (!Number.isInteger(bs) || bs < 1) throw new RangeError(`batchSize must be a positive integer, got ${bs}`);
  const epoch = opts.epoch ?? 0;
  const order = epochOrder(indices, opts.seed, epoch, opts.shuffle ?? true);
  const nb = numBatches(order.length, bs, opts.dropLast ?? false);
  const aug = opts.augment ? opts.augment : null;
  const make = (b: number): Promise<Batch> =>
    assembleBatch(source, labels, order.slice(b * bs, Math.min(order.length, (b + 1) * bs)), {
      augment: aug,
      rng: aug ? new Rng(mixSeed(opts.seed, epoch, b, 1)) : null,
      batchIndex: b,
    });
  const prefetch = opts.prefetch ?? true;
  let next: Promise<Batch> | null = null;
  for (let b = 0; b < nb; b++) {
    const cur = await (next ?? make(b));
    next = null;
    if (prefetch && b + 1 < nb) {
      // Start on the next macrotask, so the CPU work overlaps the caller's awaits (GPU step, readback).
      const b1 = b + 1;
      next = new Promise<void>((r) => setImmediate(r)).then(() => make(b1));
      next.catch(() => undefined); // rethrown when awaited; no unhandled rejection if the caller stops early
    }
    yield cur;
  }
}
