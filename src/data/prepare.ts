// One call from a dataset folder to what training needs: scan, decode everything once (cache),
// group exact duplicates by pixel hash, and split stratified from a seed.

import { ImageCache } from './cache.js';
import { type ScanOptions, type ScannedDataset, type Task, scanDataset } from './dataset.js';
import type { Fit } from './images.js';
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
}

export interface PreparedDataset {
  dataset: ScannedDataset;
  cache: ImageCache;
  /** labels[i] of dataset item i. */
  labels: Int32Array;
  split: SplitResult;
}

export async function prepareDataset(root: string, task: Task, opts: PrepareOptions): Promise<PreparedDataset> {
  const dataset = await scanDataset(root, task, opts);
  const cache = new ImageCache(
    dataset.items.map((it) => it.path),
    { size: opts.size, fit: opts.fit, workScale: opts.workScale, concurrency: opts.concurrency },
  );
  const hashes = await cache.hashes(opts.onProgress);
  const split = stratifiedSplit(dataset.items, dataset.classes, { seed: opts.seed, test: opts.test, val: opts.val, groups: hashes });
  return { dataset, cache, labels: Int32Array.from(dataset.items, (it) => it.label), split };
}
