// Evaluating an anomaly detector on a dataset folder (`wgsl-nn anomaly eval`).
//
// Labels come from folder names: good/free/ok/normal are good, every other folder is a defect class.
// With `split: 'test'` the good images the model was trained or calibrated on (model.json's train and
// validation files) are left out, so a model trained on this dataset is reported on its unseen good
// images plus every defect image. Reported: image-level ROC-AUC (defect = positive, by the score), the
// recalls of both classes at the model's threshold, per folder the share of images flagged, and with a
// masks folder (masks/<folder>/<stem>.<ext>, same size as the image, defect >= 128) the pixel-level
// ROC-AUC of the anomaly maps over the defect images.
import { existsSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { DatasetError, isGoodFolder, scanDataset, type DatasetItem } from '../data/dataset.js';
import { IMAGE_EXTENSIONS, ImageDecodeError, loadGray8, resizeGray8 } from '../data/images.js';
import { rocAuc } from '../eval/metrics.js';
import type { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import { AnomalyDetector, type AnomalyResult } from './detector.js';
import { writeHeatmapPng } from './heatmap.js';
import { PixelAuroc } from './metrics.js';
import type { WorkImage } from './patches.js';

export interface AnomalyEvalOptions {
  engine?: Engine;
  /** 'skip' leaves unreadable images out (listed in `skipped`); 'fail' (default) stops at the first, naming it. */
  onBadImage?: 'skip' | 'fail';
  /** Root of the ground-truth masks (same folder/stem layout as the data): adds pixelAuroc. */
  masks?: string;
  /** Write <dir>/<folder>/<stem>.png: each image with its anomaly map overlaid. */
  heatmapDir?: string;
  /** 'all' (default) scores every image; 'test' leaves out the good images the model was trained or calibrated on. */
  split?: 'all' | 'test';
  /** Overrides the model's threshold. */
  threshold?: number;
  /** Images scored together (their patches share GPU batches); default 8. */
  chunk?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface ImageScore {
  path: string;
  folder: string;
  good: boolean;
  score: number;
  isDefect: boolean;
}

export interface FolderReport {
  count: number;
  /** Images scored above the threshold, and their share (defect folders: recall; good folders: false alarms). */
  flagged: number;
  flaggedShare: number;
  meanScore: number;
}

export interface AnomalyEvalResult {
  model: string;
  data: string;
  split: 'all' | 'test';
  count: number;
  goodCount: number;
  defectCount: number;
  /** Image-level ROC-AUC (defect = positive); null without both good and defect images. */
  auroc: number | null;
  threshold: number;
  /** The false-alarm rate the threshold was chosen for on the model's validation good images. */
  falseAlarmRate: number;
  /** Share of good images at or below the threshold, and of defect images above it. */
  goodRecall: number | null;
  defectRecall: number | null;
  perClass: Record<string, FolderReport>;
  /** Pixel-level ROC-AUC of the maps over the defect images (with masks); null when no defect pixel or no normal pixel. */
  pixelAuroc?: number | null;
  /** Good images left out because the model was trained or calibrated on them (split 'test'). */
  excluded: number;
  skipped: { path: string; reason: string }[];
  images: ImageScore[];
  seconds: number;
  imagesPerSecond: number;
}

/** The mask of `item` under `masksRoot` (same folder and stem, any image extension), or null. */
export function findMask(masksRoot: string, item: Pick<DatasetItem, 'folder' | 'path'>): string | null {
  const stem = basename(item.path, extname(item.path));
  for (const ext of IMAGE_EXTENSIONS) {
    for (const e of [ext, ext.toUpperCase()]) {
      const p = join(masksRoot, item.folder, stem + e);
      if (existsSync(p)) return p;
    }
  }
  return null;
}

/** A mask as 8-bit values at the image's size (resized when it differs). */
async function loadMask(path: string, width: number, height: number): Promise<Uint8Array> {
  const m = await loadGray8(path);
  if (m.width === width && m.height === height) return m.data;
  return resizeGray8(m, width, height, 'fill');
}

export async function evaluateAnomalyDetector(modelDir: string, dataDir: string, options: AnomalyEvalOptions = {}): Promise<AnomalyEvalResult> {
  const started = Date.now();
  const det = await AnomalyDetector.load(modelDir, { engine: options.engine, threshold: options.threshold });
  try {
    const split = options.split ?? 'all';
    const scanned = await scanDataset(dataDir, 'binary', { allowSingleClass: true });
    let items = scanned.items;
    let excluded = 0;
    if (split === 'test') {
      const files = det.meta.data?.files;
      if (!files) throw new WgslNnError(`${modelDir} does not record its training files: use --split all`);
      const seen = new Set([...files.train, ...files.val]);
      items = items.filter((it) => !(isGoodFolder(it.folder) && seen.has(it.rel)));
      excluded = scanned.items.length - items.length;
    }
    if (items.length === 0) throw new DatasetError(`no images to evaluate in ${dataDir}${excluded ? ` (all ${excluded} were used to train the model)` : ''}`);
    // Masks are checked up front: a missing one is an error before minutes of scoring.
    const maskOf = new Map<DatasetItem, string>();
    if (options.masks) {
      if (!existsSync(options.masks)) throw new DatasetError(`masks folder not found: ${options.masks}`);
      for (const it of items) {
        if (isGoodFolder(it.folder)) continue;
        const m = findMask(options.masks, it);
        if (!m) throw new DatasetError(`no mask for ${it.path} in ${options.masks} (expected ${join(options.masks, it.folder, basename(it.path, extname(it.path)))}.png)`);
        maskOf.set(it, m);
      }
    }
    const wantMap = !!options.masks || !!options.heatmapDir;
    const pixel = options.masks ? new PixelAuroc() : null;
    const skipped: { path: string; reason: string }[] = [];
    const images: ImageScore[] = [];
    const chunkSize = options.chunk ?? 8;
    for (let s = 0; s < items.length; s += chunkSize) {
      const chunk = items.slice(s, s + chunkSize);
      const loaded = await Promise.all(
        chunk.map(async (it): Promise<WorkImage | null> => {
          try {
            return await det.load(it.path);
          } catch (e) {
            if (!(e instanceof ImageDecodeError) || options.onBadImage !== 'skip') throw e;
            skipped.push({ path: it.path, reason: e.message });
            return null;
          }
        }),
      );
      const ok = chunk.filter((_, i) => loaded[i] !== null);
      const results: AnomalyResult[] = await det.scoreWorkImages(loaded.filter((w): w is WorkImage => w !== null), { map: wantMap });
      for (let i = 0; i < ok.length; i++) {
        const it = ok[i];
        const r = results[i];
        const good = isGoodFolder(it.folder);
        images.push({ path: it.path, folder: it.folder, good, score: r.score, isDefect: r.isDefect });
        const mask = maskOf.get(it);
        if (pixel && mask && r.map) pixel.add(r.map.data, await loadMask(mask, r.map.width, r.map.height));
        if (options.heatmapDir && r.map) {
          const gray = await loadGray8(it.path);
          await writeHeatmapPng(join(options.heatmapDir, it.folder, `${basename(it.path, extname(it.path))}.png`), gray, r.map, det.threshold);
        }
      }
      options.onProgress?.(Math.min(items.length, s + chunkSize), items.length);
    }

    const goodScores = images.filter((r) => r.good);
    const defectScores = images.filter((r) => !r.good);
    const auc = rocAuc(
      images.map((r) => (r.good ? 0 : 1)),
      images.map((r) => r.score),
    );
    const perClass: Record<string, FolderReport> = {};
    for (const folder of [...new Set(images.map((r) => r.folder))].sort()) {
      const rs = images.filter((r) => r.folder === folder);
      const flagged = rs.filter((r) => r.isDefect).length;
      perClass[folder] = { count: rs.length, flagged, flaggedShare: flagged / rs.length, meanScore: rs.reduce((a, r) => a + r.score, 0) / rs.length };
    }
    const seconds = (Date.now() - started) / 1000;
    const result: AnomalyEvalResult = {
      model: modelDir,
      data: dataDir,
      split,
      count: images.length,
      goodCount: goodScores.length,
      defectCount: defectScores.length,
      auroc: Number.isNaN(auc) ? null : auc,
      threshold: det.threshold,
      falseAlarmRate: det.meta.threshold.falseAlarmRate,
      goodRecall: goodScores.length ? goodScores.filter((r) => !r.isDefect).length / goodScores.length : null,
      defectRecall: defectScores.length ? defectScores.filter((r) => r.isDefect).length / defectScores.length : null,
      perClass,
      excluded,
      skipped,
      images,
      seconds,
      imagesPerSecond: images.length / Math.max(seconds, 1e-3),
    };
    if (pixel) result.pixelAuroc = pixel.auroc();
    return result;
  } finally {
    det.dispose();
  }
}

/** A plain-text summary of an evaluation, for the console. */
export function formatAnomalyReport(r: AnomalyEvalResult): string {
  const pct = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : `${(100 * v).toFixed(1)} %`);
  const lines = [
    `images: ${r.count} (${r.goodCount} good, ${r.defectCount} defect)${r.excluded ? `; ${r.excluded} good images left out (seen in training)` : ''}`,
    `image ROC-AUC: ${r.auroc === null ? 'n/a (needs good and defect images)' : r.auroc.toFixed(4)}`,
  ];
  if (r.pixelAuroc !== undefined) lines.push(`pixel ROC-AUC: ${r.pixelAuroc === null ? 'n/a' : r.pixelAuroc.toFixed(4)} (defect images against their masks)`);
  lines.push(
    `threshold ${r.threshold.toFixed(4)} (${pct(r.falseAlarmRate)} false alarms on the validation good images): good recall ${pct(r.goodRecall)}, defect recall ${pct(r.defectRecall)}`,
    '',
    `${'folder'.padEnd(12)} ${'images'.padStart(7)} ${'flagged'.padStart(8)} ${'share'.padStart(8)} ${'mean score'.padStart(11)}`,
    ...Object.entries(r.perClass).map(
      ([f, c]) => `${f.padEnd(12)} ${String(c.count).padStart(7)} ${String(c.flagged).padStart(8)} ${pct(c.flaggedShare).padStart(8)} ${c.meanScore.toFixed(3).padStart(11)}`,
    ),
    '',
    `${r.imagesPerSecond.toFixed(2)} images/s, ${r.seconds.toFixed(1)} s`,
  );
  return lines.join('\n');
}
