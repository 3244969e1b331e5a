// Calibration of a trained detector on defect-free images (no real defect is ever used):
//
//   1. units      pixelMean and featureMean: the mean residuals over the validation good images;
//                 the edge profile (scorer.ts): per distance to the image edge, 0 .. EDGE_BANDS - 1
//                 working pixels, the 99th percentile of the map over (up to 80 of) the training good
//                 images, fitted for every candidate setting below;
//   2. settings   (only with several candidates) the map smoothing sigma, the score's top-k, the
//                 feature weight and whether to average with the mirror image: each candidate scores the validation good images as they are and
//                 with one synthetic defect of each kind drawn on them (synthetic-defects.ts); the
//                 candidate with the best mean ROC-AUC (clean vs defected, averaged over the kinds) wins;
//   3. threshold  the smallest score that at most `falseAlarmRate` of the clean validation scores exceed.
// `anomaly train` calibrates at its end; `anomaly calibrate` (recalibrateModelDir) redoes it on a trained
// model, e.g. for another false-alarm rate.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { GrayImage8 } from '../data/images.js';
import type { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import { MODEL_JSON, weightsPath, writeModelWeights } from '../model-dir.js';
import { writeFileAtomic } from '../nn/serialize.js';
import type { ResolvedAnomalyConfig } from './config.js';
import { thresholdAtFalseAlarmRate } from './metrics.js';
import { ANOMALY_FORMAT, disposeNetworks, loadAnomalyDir, loadRecordedValidation, memoryWeightsName, type AnomalyMetadata, type MemoryRecord } from './model-dir.js';
import { workImageFrom } from './patches.js';
import { buildFeatureMemory, memoryAndReference, type MemoryOptions, type MemoryPrecision } from './feature-memory.js';
import {
  averageWithMirror,
  edgeProfile,
  imageScore,
  meanOver,
  mirrorImage,
  rawAnomalyMap,
  residualMaps,
  type AnomalyNetworks,
  type ResidualMaps,
  type Scoring,
} from './scorer.js';
import { kindAuroc, meanOverDraws, resolveDefectOptions, syntheticDefectDraw, type KindAuroc, type SyntheticDefectOptions } from './proxy.js';
import { SYNTHETIC_DEFECT_KINDS, type SyntheticDefectKind } from './synthetic-defects.js';

export type ScoringSettings = Pick<Scoring, 'sigma' | 'topK' | 'memoryMix'> & { featureWeight: number; mirror?: boolean; pixelWeight?: number; memoryWeight?: number };

/** Distance bands of the edge profile (working pixels; the last is the interior) and its quantile. */
export const EDGE_BANDS = 33;
export const EDGE_QUANTILE = 0.99;
/** At most this many training images are used for the edge profile. */
export const EDGE_REFERENCE_IMAGES = 80;

/** Every k-th of `items` so that at most `max` remain (a deterministic, evenly spread subset). */
export function evenSubset<T>(items: readonly T[], max: number): T[] {
  const k = Math.max(1, Math.ceil(items.length / max));
  return items.filter((_, i) => i % k === 0);
}

/** The candidates `anomaly train` and `anomaly calibrate` choose from by default. */
export const DEFAULT_SCORING_CANDIDATES: ScoringSettings[] = [false, true].flatMap((mirror) =>
  [1, 2, 4].flatMap((sigma) => [1, 16, 64].flatMap((topK) => [0, 1, 3].map((featureWeight) => ({ sigma, topK, featureWeight, mirror })))),
);

/**
 * With a feature memory: the default candidates without it, with it added (weight 1 or 3), and the memory
 * alone (pixel and feature weights 0).
 */
export const MEMORY_SCORING_CANDIDATES: ScoringSettings[] = [
  ...DEFAULT_SCORING_CANDIDATES.flatMap((c) => [0, 1, 3].map((memoryWeight) => ({ ...c, memoryWeight }))),
  ...memoryAloneCandidates(),
];

function memoryAloneCandidates(memoryMix?: number[]): ScoringSettings[] {
  return [false, true].flatMap((mirror) =>
    [1, 2, 4].flatMap((sigma) => [1, 16, 64].map((topK) => ({ sigma, topK, mirror, pixelWeight: 0, featureWeight: 0, memoryWeight: 1, ...(memoryMix ? { memoryMix } : {}) }))),
  );
}

/**
 * Mixes of two memories tried when the memory term is alone: each memory alone, equal, and 3 : 1 either
 * way (the memory maps are in units of their own mean on defect-free images, so equal is 'as normal as each other').
 */
export const TWO_MEMORY_MIXES: number[][] = [
  [1, 0],
  [0, 1],
  [1, 1],
  [3, 1],
  [1, 3],
];

/**
 * The default candidates for a model with `memories` feature memories: none, the GAN terms alone; one, the
 * memory candidates above; two, the same with the memories mixed equally, and the memory term alone with
 * every mix of TWO_MEMORY_MIXES. More than two memories: mixed equally. `mixes` (two or more memories, one
 * weight per memory each) replaces the memory-alone mixes.
 */
export function defaultScoringCandidates(memories: number, mixes?: readonly number[][]): ScoringSettings[] {
  if (mixes?.some((mix) => mix.length !== memories)) throw new WgslNnError(`memory mixes must hold one weight per memory (${memories}); got ${mixes.map((m) => m.join(':')).join(', ')}`);
  if (mixes && memories < 2) throw new WgslNnError('memory mixes need two or more memories');
  if (memories === 0) return DEFAULT_SCORING_CANDIDATES;
  if (memories === 1 || (memories > 2 && !mixes)) return MEMORY_SCORING_CANDIDATES;
  return [
    ...DEFAULT_SCORING_CANDIDATES.flatMap((c) => [0, 1, 3].map((memoryWeight) => ({ ...c, memoryWeight }))),
    ...(mixes ?? TWO_MEMORY_MIXES).flatMap((mix) => memoryAloneCandidates([...mix])),
  ];
}

export interface CandidateResult extends ScoringSettings {
  /** ROC-AUC of clean vs synthetically defected validation images, per kind (the mean over draws), and their mean. */
  auroc: KindAuroc;
}

export interface CalibrationResult {
  scoring: Scoring;
  threshold: number;
  falseAlarmRate: number;
  /** Scores of the (clean) validation images with the chosen scoring. */
  validationScores: number[];
  /** Every candidate's synthetic-defect ROC-AUC (absent when only one candidate was given). */
  selection?: CandidateResult[];
  /** The synthetic defects the selection was made on (with `selection`). */
  selectionDefects?: Required<SyntheticDefectOptions>;
  /**
   * Indices (in the networks' memories as given) of the memories the chosen mix weighs 0: removed from
   * `nets.memories` (and disposed) and from the scoring's means and mix, since they would never be searched.
   */
  droppedMemories: number[];
}

export interface CalibrationOptions {
  falseAlarmRate: number;
  /** Defect-free images for the edge profile (the training images; at most EDGE_REFERENCE_IMAGES are used). */
  reference: readonly GrayImage8[];
  candidates: ScoringSettings[];
  seed?: number;
  /** The synthetic defects candidates are chosen on (default: full contrast, one draw per image and kind). */
  defects?: SyntheticDefectOptions;
  batchSize?: number;
  log?: (line: string) => void;
}

export async function calibrate(
  nets: AnomalyNetworks,
  config: ResolvedAnomalyConfig,
  validation: readonly GrayImage8[],
  opts: CalibrationOptions,
): Promise<CalibrationResult> {
  if (validation.length === 0) throw new WgslNnError('calibration needs at least one validation good image');
  if (opts.candidates.length === 0) throw new WgslNnError('calibration needs at least one scoring candidate');
  const anyMirror = opts.candidates.some((c) => c.mirror);
  // Residuals of each image set, plain and (when a candidate wants it) averaged with the mirror image's.
  const residualSets = async (images: readonly GrayImage8[]) => {
    const work = await Promise.all(images.map((g) => workImageFrom(g, config)));
    const all = await residualMaps(nets, config, anyMirror ? [...work, ...work.map(mirrorImage)] : work, opts.batchSize);
    const plain = all.slice(0, work.length);
    return { plain, mirror: anyMirror ? plain.map((p, i) => averageWithMirror(p, all[work.length + i])) : plain };
  };
  const pick = (set: { plain: ResidualMaps[]; mirror: ResidualMaps[] }, c: ScoringSettings) => (c.mirror ? set.mirror : set.plain);
  const clean = await residualSets(validation);
  const memories = nets.memories?.length ?? 0;
  const units: Pick<Scoring, 'pixelMean' | 'featureMean' | 'memoryMeans'> = { pixelMean: meanOver(clean.plain.map((r) => r.pixel)), featureMean: meanOver(clean.plain.map((r) => r.feature)) };
  if (memories) units.memoryMeans = Array.from({ length: memories }, (_, k) => meanOver(clean.plain.map((r) => r.memories![k])));
  if (!(units.pixelMean > 0 && units.featureMean > 0) || !(units.memoryMeans ?? []).every((m) => m > 0))
    throw new WgslNnError(
      `calibration failed: mean residuals ${units.pixelMean} (pixel), ${units.featureMean} (feature)${memories ? `, ${units.memoryMeans!.join(', ')} (memory)` : ''} on the validation images`,
    );
  if (!memories && opts.candidates.some((c) => (c.memoryWeight ?? 0) > 0)) throw new WgslNnError('a scoring candidate uses the feature memory, but the model has none');
  for (const c of opts.candidates)
    if (c.memoryMix && c.memoryMix.length !== memories) throw new WgslNnError(`a scoring candidate mixes ${c.memoryMix.length} memories, but the model has ${memories}`);
  // The caller gives the edge-profile images (memoryAndReference keeps them apart from the memory's).
  const reference = await residualSets(evenSubset(opts.reference, EDGE_REFERENCE_IMAGES));
  const withEdges = (c: ScoringSettings): Scoring => {
    const s: Scoring = { ...units, ...c, mirror: !!c.mirror };
    return { ...s, edgeScale: edgeProfile(pick(reference, c).map((r) => ({ width: r.width, height: r.height, map: rawAnomalyMap(r, s) })), EDGE_BANDS, EDGE_QUANTILE) };
  };
  const scoresOf = (maps: ResidualMaps[], s: Scoring) => maps.map((r) => imageScore(r, s));

  let chosen: ScoringSettings = opts.candidates[0];
  let selection: CandidateResult[] | undefined;
  const selectionDefects = resolveDefectOptions(opts.defects);
  if (opts.candidates.length > 1) {
    const { contrast, draws } = selectionDefects;
    const defected: Record<SyntheticDefectKind, Awaited<ReturnType<typeof residualSets>>>[] = [];
    for (let d = 0; d < draws; d++) {
      const set = {} as (typeof defected)[number];
      for (const kind of SYNTHETIC_DEFECT_KINDS) set[kind] = await residualSets(syntheticDefectDraw(validation, kind, opts.seed ?? 1, d, contrast));
      defected.push(set);
    }
    selection = opts.candidates.map((c) => {
      const s = withEdges(c);
      const base = scoresOf(pick(clean, c), s);
      const perDraw = defected.map((set) => kindAuroc(base, Object.fromEntries(SYNTHETIC_DEFECT_KINDS.map((kind) => [kind, scoresOf(pick(set[kind], c), s)])) as Record<SyntheticDefectKind, number[]>));
      return { ...c, auroc: meanOverDraws(perDraw) };
    });
    const best = selection.reduce((a, b) => (b.auroc.mean > a.auroc.mean ? b : a));
    const { auroc: _auroc, ...settings } = best;
    chosen = { ...settings, mirror: !!best.mirror };
    opts.log?.(
      `scoring chosen on synthetic defects: sigma ${best.sigma}, top-k ${best.topK}, pixel weight ${best.pixelWeight ?? 1}, feature weight ${best.featureWeight}, ` +
        `memory weight ${best.memoryWeight ?? 0}${best.memoryMix ? ` (mix ${best.memoryMix.join(':')})` : ''}, mirror ${!!best.mirror} ` +
        `(ROC-AUC ${SYNTHETIC_DEFECT_KINDS.map((k) => `${k} ${best.auroc[k].toFixed(3)}`).join(', ')})`,
    );
  }
  const scoring = withEdges(chosen);
  const validationScores = scoresOf(pick(clean, chosen), scoring);
  const threshold = thresholdAtFalseAlarmRate(validationScores, opts.falseAlarmRate);
  const droppedMemories = dropUnweightedMemories(nets, scoring, opts.log);
  return { scoring, threshold, falseAlarmRate: opts.falseAlarmRate, validationScores, selection, ...(selection ? { selectionDefects } : {}), droppedMemories };
}

/**
 * Removes the memories a chosen mix weighs 0 from `nets.memories` (disposing them) and from the scoring's
 * memoryMeans and memoryMix, so a model keeps only what it searches (a 16,384 x 128 memory is 8 MB).
 * The scores are unchanged: a zero-weight memory adds nothing to the map. Returns the dropped indices.
 */
function dropUnweightedMemories(nets: AnomalyNetworks, scoring: Scoring, log?: (line: string) => void): number[] {
  const mix = scoring.memoryMix;
  if (!nets.memories?.length || !mix || !((scoring.memoryWeight ?? 0) > 0)) return [];
  const dropped = mix.flatMap((w, k) => (w === 0 ? [k] : []));
  if (!dropped.length) return [];
  for (const k of dropped) {
    const m = nets.memories[k];
    log?.(`memory ${k + 1} (${m.description}) has weight 0 in the chosen mix: not kept`);
    m.dispose();
  }
  const kept = (_: unknown, k: number) => mix[k] !== 0;
  nets.memories = nets.memories.filter(kept);
  scoring.memoryMix = mix.filter(kept);
  scoring.memoryMeans = scoring.memoryMeans?.filter(kept);
  // One memory left: its mix is just itself.
  if (scoring.memoryMix.length === 1) delete scoring.memoryMix;
  return dropped;
}

/** The settings of a calibrated scoring, defaults written out (the candidate that reproduces it). */
export function scoringSettings(s: Scoring): ScoringSettings {
  return {
    sigma: s.sigma,
    topK: s.topK,
    featureWeight: s.featureWeight ?? 1,
    pixelWeight: s.pixelWeight ?? 1,
    memoryWeight: s.memoryWeight ?? 0,
    mirror: s.mirror ?? false,
    ...(s.memoryMix ? { memoryMix: [...s.memoryMix] } : {}),
  };
}

export interface RecalibrateOptions {
  /** Dataset root holding the model's validation files (default: the root recorded in model.json). */
  data?: string;
  falseAlarmRate?: number;
  /** Default: defaultScoringCandidates (selection on synthetic defects). */
  candidates?: ScoringSettings[];
  /** The memory-alone mixes of the default candidates (defaultScoringCandidates). */
  memoryMixes?: number[][];
  /**
   * Keep the model's scoring settings (weights, mix, smoothing, top-k, mirror) as the only candidate, so that
   * only the normal levels (means, edge profile) and the threshold are derived again: for another false-alarm
   * rate, or memories stored at another precision. Not with `candidates` or `memoryMixes`.
   */
  keepScoring?: boolean;
  /** Build (or rebuild) the model's feature memories, one per backbone, from its training images first (the weights of G, D and E are not touched). */
  memories?: MemoryOptions[];
  /**
   * With `memories`: keep the model's memories as they are and append the new ones after them (each drawn as
   * it would be at that position among the backbones, so the set equals building them all at once).
   */
  keepMemories?: boolean;
  /** The synthetic defects the candidates are chosen on (CalibrationOptions.defects). */
  defects?: SyntheticDefectOptions;
  /** Without `memories`: store the model's existing memories at this precision (to f16 their banks are rounded), then calibrate. */
  memoryPrecision?: MemoryPrecision;
  engine?: Engine;
  log?: (line: string) => void;
  /** Recorded in model.json (recalibration.command). */
  command?: string;
}

/**
 * Re-runs calibration of a trained model directory on its own validation good images (model.json's
 * data.files.val) and rewrites model.json's scoring and threshold; the weights of G, D and E are not
 * touched. With `memory`, a feature memory is built from the training images first (memory.safetensors).
 */
export async function recalibrateModelDir(dir: string, opts: RecalibrateOptions = {}): Promise<CalibrationResult> {
  if (opts.keepScoring && (opts.candidates || opts.memoryMixes)) throw new WgslNnError('keeping the scoring settings excludes choosing among candidates or memory mixes');
  const { nets, meta, config } = loadAnomalyDir(dir, opts.engine);
  try {
    const { load, validation } = await loadRecordedValidation(dir, meta, opts.data, 'cannot recalibrate');
    const train = meta.data!.files.train;
    let memoryMeta: MemoryRecord[] | undefined = meta.memories;
    if (opts.keepMemories && !opts.memories?.length) throw new WgslNnError('keeping the memories applies when new ones are built (--backbone)');
    if (opts.memories?.length) {
      const split = memoryAndReference(train, EDGE_REFERENCE_IMAGES);
      const kept = opts.keepMemories ? (nets.memories ?? []) : [];
      const keptMeta = opts.keepMemories ? (meta.memories ?? []) : [];
      // The edge profile is measured on images no memory holds: the kept memories must come from the same ones.
      const other = keptMeta.find((m) => m.images.length !== split.memory.length || m.images.some((f, i) => f !== split.memory[i]));
      if (other) throw new WgslNnError(`${dir}: a kept memory (${other.backbone}) was drawn from other training images than new ones would be; rebuild all memories instead`);
      const images = await Promise.all(split.memory.map(async (f) => workImageFrom(await load(f), config)));
      const engine = nets.generator.parameters()[0].engine;
      if (!opts.keepMemories) nets.memories?.forEach((m) => m.dispose());
      nets.memories = [...kept];
      for (const [k, o] of opts.memories.entries())
        nets.memories.push(await buildFeatureMemory(o, images, meta.data?.splitSeed ?? 1, engine, opts.log, kept.length + k));
      memoryMeta = [...keptMeta, ...nets.memories.slice(kept.length).map((m) => ({ ...m.config, images: split.memory }))];
    }
    if (!opts.memories?.length && opts.memoryPrecision !== undefined && !nets.memories?.length)
      throw new WgslNnError(`${dir} has no feature memories to store at ${opts.memoryPrecision} (build them with --backbone)`);
    const convert = !opts.memories?.length && opts.memoryPrecision !== undefined && !!nets.memories?.length;
    if (convert) {
      const old = nets.memories!;
      nets.memories = [];
      try {
        for (const m of old) nets.memories.push(await m.withPrecision(opts.memoryPrecision!));
      } finally {
        old.forEach((m) => m.dispose());
      }
      memoryMeta = nets.memories.map((m, k) => ({ ...m.config, images: memoryMeta![k].images }));
      opts.log?.(`memories stored at ${opts.memoryPrecision}${opts.memoryPrecision === 'f16' ? ' (banks rounded to half precision)' : ''}`);
    }
    const memoryFiles = new Set(memoryMeta?.flatMap((m) => m.images) ?? []);
    const referenceFiles = memoryMeta?.length ? train.filter((f) => !memoryFiles.has(f)) : train;
    const reference = await Promise.all(evenSubset(referenceFiles, EDGE_REFERENCE_IMAGES).map(load));
    const rate = opts.falseAlarmRate ?? meta.threshold.falseAlarmRate;
    const cal = await calibrate(nets, config, validation, {
      falseAlarmRate: rate,
      reference,
      candidates: opts.keepScoring ? [scoringSettings(meta.scoring)] : (opts.candidates ?? defaultScoringCandidates(nets.memories?.length ?? 0, opts.memoryMixes)),
      seed: meta.data?.splitSeed ?? 1,
      defects: opts.defects,
      log: opts.log,
    });
    // The selection table's mixes have one weight per memory as calibrated: the dropped ones stay on record.
    const dropped = memoryMeta?.flatMap(({ images: _images, ...config }, index) => (cal.droppedMemories.includes(index) ? [{ index, ...config }] : []));
    memoryMeta = memoryMeta?.filter((_, k) => !cal.droppedMemories.includes(k));
    // Rebuilt memories, or a dropped one (the later ones move up a file name), are written again.
    const rewrite = !!opts.memories?.length || convert || cal.droppedMemories.length > 0;
    if (rewrite) for (const [k, m] of (nets.memories ?? []).entries()) writeModelWeights(dir, ANOMALY_FORMAT, memoryWeightsName(k), await m.stateDict());
    const updated: AnomalyMetadata = {
      ...meta,
      ...(memoryMeta?.length ? { memories: memoryMeta } : {}),
      scoring: cal.scoring,
      threshold: { value: cal.threshold, falseAlarmRate: rate, validationImages: validation.length },
      training: {
        ...meta.training,
        validationScores: cal.validationScores,
        // Kept settings were chosen by the earlier selection: its table stays the record of why.
        scoringSelection: cal.selection ?? (opts.keepScoring ? meta.training?.scoringSelection : undefined),
        // On which synthetic defects that table was made (absent: full contrast, one draw, as before the option).
        scoringSelectionDefects: cal.selectionDefects ?? (opts.keepScoring ? meta.training?.scoringSelectionDefects : undefined),
      },
      recalibration: {
        command: opts.command,
        at: new Date().toISOString(),
        ...(dropped?.length ? { droppedMemories: dropped } : {}),
        ...(meta.recalibration ? { previous: meta.recalibration } : {}),
      },
    };
    writeFileAtomic(join(dir, MODEL_JSON), [new TextEncoder().encode(JSON.stringify(updated, null, 2) + '\n')]);
    // Memories of an earlier calibration beyond the new count only take space (removed after model.json stops naming them).
    if (rewrite) for (let k = nets.memories?.length ?? 0; existsSync(weightsPath(dir, memoryWeightsName(k))); k++) rmSync(weightsPath(dir, memoryWeightsName(k)));
    return cal;
  } finally {
    disposeNetworks(nets);
  }
}
