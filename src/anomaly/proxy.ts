// The synthetic-defect proxy: how well a scoring separates defect-free images from the same images with
// one synthetic defect drawn on them (synthetic-defects.ts), as ROC-AUC per defect kind. Calibration
// chooses its scoring settings by it (one draw per image and kind, full contrast); `anomaly proxy` scores
// a model as it is (its stored scoring, edge profile and threshold untouched) with fainter defects and
// several independent draws, because at full contrast every recent model sits near 0.976, where one draw
// of 57 images cannot rank two models. The draws are the same for every model given the same seed, so
// models are compared on identical defects, draw by draw.
import type { GrayImage8 } from '../data/images.js';
import { mixSeed } from '../data/split.js';
import { rocAuc } from '../eval/metrics.js';
import type { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import { Rng } from '../util/rng.js';
import { disposeNetworks, loadAnomalyDir, loadRecordedValidation } from './model-dir.js';
import { workImageFrom } from './patches.js';
import { imageScore, scoringResiduals } from './scorer.js';
import { SYNTHETIC_DEFECT_KINDS, withSyntheticDefect, type SyntheticDefectKind } from './synthetic-defects.js';

export type KindAuroc = Record<SyntheticDefectKind, number> & { mean: number };

/**
 * `images` with one synthetic defect of `kind` each. Draw 0 is the one calibration uses; draw d > 0 comes
 * from its own stream, so adding draws leaves the earlier ones as they were.
 */
export function syntheticDefectDraw(images: readonly GrayImage8[], kind: SyntheticDefectKind, seed: number, draw = 0, contrast = 1): GrayImage8[] {
  const k = SYNTHETIC_DEFECT_KINDS.indexOf(kind);
  const rng = new Rng(draw === 0 ? mixSeed(seed, 0xdefec7, k) : mixSeed(seed, 0xdefec7, k, draw));
  return images.map((g) => withSyntheticDefect(g, kind, rng, contrast));
}

/** ROC-AUC of clean scores (negatives) against each kind's defected scores (positives), and their mean over the kinds. */
export function kindAuroc(clean: readonly number[], defected: Record<SyntheticDefectKind, readonly number[]>): KindAuroc {
  const out = {} as KindAuroc;
  for (const kind of SYNTHETIC_DEFECT_KINDS) {
    const d = defected[kind];
    out[kind] = rocAuc([...clean.map(() => 0), ...d.map(() => 1)], [...clean, ...d]);
  }
  out.mean = SYNTHETIC_DEFECT_KINDS.reduce((a, k) => a + out[k], 0) / SYNTHETIC_DEFECT_KINDS.length;
  return out;
}

/** Per kind and for the mean, the average over draws. */
export function meanOverDraws(perDraw: readonly KindAuroc[]): KindAuroc {
  const out = {} as KindAuroc;
  for (const key of [...SYNTHETIC_DEFECT_KINDS, 'mean'] as const) out[key] = perDraw.reduce((a, r) => a + r[key], 0) / perDraw.length;
  return out;
}

/** How the synthetic defects are drawn: their contrast and the draws per image and kind (defaults 1 and 1: calibration's). */
export interface SyntheticDefectOptions {
  contrast?: number;
  draws?: number;
}

/** The options with defaults, checked. */
export function resolveDefectOptions(o: SyntheticDefectOptions = {}): Required<SyntheticDefectOptions> {
  const contrast = o.contrast ?? 1;
  const draws = o.draws ?? 1;
  if (!(contrast > 0) || !Number.isFinite(contrast)) throw new WgslNnError(`synthetic defect contrast must be a positive number, got ${o.contrast}`);
  if (!Number.isInteger(draws) || draws < 1) throw new WgslNnError(`synthetic defect draws must be a positive integer, got ${o.draws}`);
  return { contrast, draws };
}

export interface ProxyOptions extends SyntheticDefectOptions {
  /** Seed of the draws (default: the model's split seed, as calibration). */
  seed?: number;
  /** Dataset root holding the model's validation files (default: the one recorded in model.json). */
  data?: string;
  engine?: Engine;
  batchSize?: number;
}

export interface ProxyResult {
  model: string;
  contrast: number;
  draws: number;
  seed: number;
  /** Validation good images (each scored clean, and once per draw and kind with a defect). */
  images: number;
  /** Per draw: ROC-AUC per kind and the mean over kinds. */
  perDraw: KindAuroc[];
  /** Per kind, the mean over draws; `mean` the mean over kinds (= the mean of perDraw's means). */
  auroc: KindAuroc;
}

/** Scores a model directory as it is on synthetic defects drawn on its validation good images (see the file comment). */
export async function evaluateOnSyntheticDefects(dir: string, opts: ProxyOptions = {}): Promise<ProxyResult> {
  const { contrast, draws } = resolveDefectOptions(opts);
  const { nets, meta, config } = loadAnomalyDir(dir, opts.engine);
  try {
    const { validation } = await loadRecordedValidation(dir, meta, opts.data, 'no images to draw synthetic defects on');
    const seed = opts.seed ?? meta.data?.splitSeed ?? 1;
    const scoresOf = async (images: readonly GrayImage8[]) => {
      const work = await Promise.all(images.map((g) => workImageFrom(g, config)));
      const maps = await scoringResiduals(nets, config, work, meta.scoring, opts.batchSize);
      return maps.map((r) => imageScore(r, meta.scoring));
    };
    const clean = await scoresOf(validation);
    const perDraw: KindAuroc[] = [];
    for (let d = 0; d < draws; d++) {
      const defected = {} as Record<SyntheticDefectKind, number[]>;
      for (const kind of SYNTHETIC_DEFECT_KINDS) defected[kind] = await scoresOf(syntheticDefectDraw(validation, kind, seed, d, contrast));
      perDraw.push(kindAuroc(clean, defected));
    }
    return { model: dir, contrast, draws, seed, images: validation.length, perDraw, auroc: meanOverDraws(perDraw) };
  } finally {
    disposeNetworks(nets);
  }
}
