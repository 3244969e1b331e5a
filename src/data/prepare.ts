// One call from a dataset folder to what training needs: scan, decode everything once (cache),
// group exact duplicates by pixel hash, and split stratified from a seed.

import { type CachedImage, ImageCache, type ImageSource } from './cache.js';
import { type ScanOptions, type ScannedDataset, type Task, scanDataset } from './dataset.js';
import { type Fit, ImageDecodeError } from './images.js';
import { type SplitResult, stratifiedSplit } from './split.js';

export interface PrepareOptions extends ScanOptions {
  /** Model input side S. */
  size: number;
  seed: number;
  /** Test fraction per class (default 0.2). */
  test?: number;
  /** Validation fraction of the rest (default 0.2). */
  val?: number;
  fit?: Fit;
  workScale?: number;
  concurrency?: number;
  /** Called while images are decoded. */
  onProgress?: (done: number, total: number) => void;
  /** 'skip' leaves unreadable images out (reported in `skipped` and to onSkip); 'fail' (default) throws. */
  onBadImage?: 'skip' | 'fail';
  onSkip?: (path: string, reason: string) => void;
}

export interface PreparedDataset {
  /** The scan, with `items` reduced to the readable images (when unreadable ones were skipped). */
  dataset: ScannedDataset;
  /** Decoded images of `dataset.items`, in the same order. */
  cache: ImageSource;
  /** labels[i] of dataset item i. */
  labels: Int32Array;
  split: SplitResult;
  /** Images left out because they could not be decoded (onBadImage 'skip'). */
  skipped: { path: string; reason: string }[];
}

/**
 * Scan, decode every image once (a corrupt, empty or non-image file raises ImageDecodeError naming
 * it, or is skipped and reported with onBadImage 'skip'), group exact pixel duplicates, split.
 */
export async function prepareDataset(root: string, task: Task, opts: PrepareOptions): Promise<PreparedDataset> {
  const scanned = await scanDataset(root, task, opts);
  const cache = new ImageCache(
    scanned.items.map((it) => it.path),
    { size: opts.size, fit: opts.fit, workScale: opts.workScale, concurrency: opts.concurrency },
  );
  const skipped: { path: string; reason: string }[] = [];
  const readable: boolean[] = new Array(scanned.items.length).fill(false);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < scanned.items.length) {
      const i = next++;
      try {
        await cache.get(i);
        readable[i] = true;
      } catch (e) {
        if (!(e instanceof ImageDecodeError) || opts.onBadImage !== 'skip') throw e;
        skipped.push({ path: scanned.items[i].path, reason: e.message });
        opts.onSkip?.(scanned.items[i].path, e.message);
      }
      opts.onProgress?.(++done, scanned.items.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.concurrency ?? 4, scanned.items.length)) }, worker));
  const kept = readable.flatMap((ok, i) => (ok ? [i] : []));
  const dataset: ScannedDataset = { ...scanned, items: kept.map((i) => scanned.items[i]) };
  const source: ImageSource = kept.length === scanned.items.length ? cache : new IndexedSource(cache, kept);
  const hashes: string[] = [];
  for (const i of kept) hashes.push((await cache.get(i)).hash);
  const split = stratifiedSplit(dataset.items, dataset.classes, { seed: opts.seed, test: opts.test, val: opts.val, groups: hashes });
  return { dataset, cache: source, labels: Int32Array.from(dataset.items, (it) => it.label), split, skipped };
}

/** A view of another source through an index map (the decoded images are shared, not decoded again). */
class IndexedSource implements ImageSource {
  constructor(
    private readonly inner: ImageSource,
    private readonly map: readonly number[],
  ) {}
  get size(): number {
    return this.inner.size;
  }
  get length(): number {
    return this.map.length;
  }
  get(i: number): CachedImage | Promise<CachedImage> {
    return this.inner.get(this.map[i]);
  }
}
