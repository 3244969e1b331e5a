// Decision thresholds for good/defect (binary) classifiers: a production line runs at a chosen operating
// point (a false-alarm rate it can afford, or a defect recall it must reach), not at 0.5.
//
// The rule, everywhere (Inspector, eval, serve): a part is called 'defect' when P(defect) >= threshold.
// Without a stored threshold it is 0.5 (models trained before thresholds existed decide as before,
// except for a score of exactly 0.5, which was 'good' and is now 'defect').
//
// Choosing the threshold (chooseThreshold), on the scores of the validation split:
//   candidates   the midpoints between consecutive distinct scores, plus one halfway between the lowest
//                score and 0 (it calls every image defect) and one halfway between the highest score and
//                1 (it calls none; absent when the highest score is exactly 1.0). So no validation image
//                sits on the threshold (bar a score of exactly 0, below the threshold 0 that calls
//                everything); images with tied scores are always on the same side.
//   far=x        the smallest candidate whose false-alarm rate (share of good images called defect) is
//                <= x: the highest defect recall that false-alarm budget allows.
//   recall=x     the largest candidate whose defect recall is >= x: the fewest false alarms that
//                recall allows.
// A recall target always has a threshold (the lowest candidate calls every image defect). A far target
// has none when more than x of the good images score exactly 1.0 (saturated sigmoid): that is an
// OperatingPointError naming the lowest reachable rate, never a silent fallback.
//
// calibrateModelDir redoes the choice for a trained model on the validation split recorded in its
// model.json, and rewrites model.json atomically with the new `decision` and the validation and
// test metrics at that threshold.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Engine } from '../gpu/engine.js';
import { WgslNnError } from '../gpu/errors.js';
import { computeMetrics, rocAuc, type MetricsReport } from '../eval/metrics.js';
import { mapToModelClasses, scanDataset } from '../data/dataset.js';
import { splitFromDescription, type SplitDescription } from '../data/split.js';
import { MODEL_JSON } from '../model-dir.js';
import { writeFileAtomic } from '../nn/serialize.js';
import { Inspector } from './inspector.js';
import { DEFAULT_THRESHOLD } from './model-dir.js';

export { DEFAULT_THRESHOLD };

/** A target false-alarm rate (share of good parts called defect) or a target defect recall. */
export type OperatingPoint = { far: number } | { recall: number };

/** What `train --task binary` uses when no operating point is given. */
export const DEFAULT_OPERATING_POINT: OperatingPoint = { far: 0.05 };

export const DECISION_RULE = 'defect when P(defect) >= threshold';

/** An operating point that is malformed, out of range, or that no threshold can reach on the data. */
export class OperatingPointError extends WgslNnError {}

/** Parses 'far=0.03' or 'recall=0.95' (fractions; far in [0, 1), recall in (0, 1]). */
export function parseOperatingPoint(text: string): OperatingPoint {
  const m = /^\s*(far|recall)\s*=\s*([^\s]+)\s*$/i.exec(text);
  if (!m) throw new OperatingPointError(`operating point '${text}' must be far=<rate> or recall=<rate>, e.g. far=0.03 or recall=0.95`);
  const value = Number(m[2]);
  return checkOperatingPoint(m[1].toLowerCase() === 'far' ? { far: value } : { recall: value });
}

export function checkOperatingPoint(op: OperatingPoint): OperatingPoint {
  if ('far' in op) {
    if (!(op.far >= 0 && op.far < 1)) throw new OperatingPointError(`false-alarm rate must be a fraction in [0, 1), got ${op.far}`);
  } else if (!(op.recall > 0 && op.recall <= 1)) throw new OperatingPointError(`defect recall must be a fraction in (0, 1], got ${op.recall}`);
  return op;
}

export function formatOperatingPoint(op: OperatingPoint): string {
  return 'far' in op ? `far=${op.far}` : `recall=${op.recall}`;
}

/** How a threshold decides on a set of scored images (labels: 0 good, 1 defect). */
export interface DecisionRates {
  threshold: number;
  good: number;
  defect: number;
  /** Good images called defect. */
  falseAlarms: number;
  /** Defect images called good. */
  missed: number;
  /** falseAlarms / good (NaN without good images). */
  falseAlarmRate: number;
  /** 1 - falseAlarmRate: the share of good parts called good. */
  goodRecall: number;
  /** Share of defect images called defect (NaN without defect images). */
  defectRecall: number;
}

function checkScored(scores: ArrayLike<number>, labels: ArrayLike<number>): void {
  if (scores.length !== labels.length) throw new WgslNnError(`${scores.length} scores but ${labels.length} labels`);
  for (let i = 0; i < scores.length; i++) {
    if (!(scores[i] >= 0 && scores[i] <= 1)) throw new WgslNnError(`score ${i} is ${scores[i]}, not a probability in [0, 1]`);
    if (labels[i] !== 0 && labels[i] !== 1) throw new WgslNnError(`label ${i} is ${labels[i]}, expected 0 (good) or 1 (defect)`);
  }
}

/** Counts and rates of the rule P(defect) >= threshold. */
export function ratesAt(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold: number): DecisionRates {
  checkScored(scores, labels);
  let good = 0;
  let defect = 0;
  let falseAlarms = 0;
  let missed = 0;
  for (let i = 0; i < scores.length; i++) {
    const called = scores[i] >= threshold;
    if (labels[i] === 0) {
      good++;
      if (called) falseAlarms++;
    } else {
      defect++;
      if (!called) missed++;
    }
  }
  const falseAlarmRate = good ? falseAlarms / good : NaN;
  return { threshold, good, defect, falseAlarms, missed, falseAlarmRate, goodRecall: 1 - falseAlarmRate, defectRecall: defect ? (defect - missed) / defect : NaN };
}

/** The threshold an operating point selects on scored images (see the file comment for the rule). */
export function chooseThreshold(scores: ArrayLike<number>, labels: ArrayLike<number>, op: OperatingPoint): DecisionRates {
  checkOperatingPoint(op);
  checkScored(scores, labels);
  // Distinct scores ascending with their good/defect counts.
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  const values: number[] = [];
  const goodAt: number[] = [];
  const defectAt: number[] = [];
  for (const i of order) {
    if (values.length === 0 || scores[i] !== values[values.length - 1]) {
      values.push(scores[i]);
      goodAt.push(0);
      defectAt.push(0);
    }
    if (labels[i] === 0) goodAt[goodAt.length - 1]++;
    else defectAt[defectAt.length - 1]++;
  }
  const nGood = goodAt.reduce((a, b) => a + b, 0);
  const nDefect = defectAt.reduce((a, b) => a + b, 0);
  if (nGood === 0 || nDefect === 0)
    throw new OperatingPointError(`choosing a threshold needs good and defect images; got ${nGood} good and ${nDefect} defect`);
  const m = values.length;
  // Candidate c (0..top) calls the distinct values c..m-1 defect; no threshold in [0, 1] calls a score of 1.0 good.
  const top = values[m - 1] >= 1 ? m - 1 : m;
  const candidate = (c: number) => (c === 0 ? values[0] / 2 : c === m ? (values[m - 1] + 1) / 2 : (values[c - 1] + values[c]) / 2);
  // Called-defect counts per candidate, from the top.
  const fa = new Array<number>(m + 1).fill(0);
  const hit = new Array<number>(m + 1).fill(0);
  for (let c = m - 1; c >= 0; c--) {
    fa[c] = fa[c + 1] + goodAt[c];
    hit[c] = hit[c + 1] + defectAt[c];
  }
  const eps = 1e-9; // counts against rate * n, so 0.05 * 20 allows exactly 1
  let chosen = -1;
  if ('far' in op) {
    for (let c = 0; c <= top && chosen < 0; c++) if (fa[c] <= op.far * nGood + eps) chosen = c;
    if (chosen < 0)
      throw new OperatingPointError(
        `no threshold reaches far=${op.far}: ${fa[top]} of ${nGood} good images score exactly 1.0, so the lowest reachable false-alarm rate is ${(fa[top] / nGood).toFixed(4)}`,
      );
  } else {
    for (let c = top; c >= 0 && chosen < 0; c--) if (hit[c] >= op.recall * nDefect - eps) chosen = c;
    if (chosen < 0) throw new OperatingPointError(`no threshold reaches recall=${op.recall}`); // unreachable: candidate 0 calls all
  }
  return ratesAt(scores, labels, candidate(chosen));
}

/** Defect recall at several false-alarm budgets, thresholds chosen on the same scores (an optimistic, in-sample figure). */
export function recallAtFalseAlarmRates(scores: ArrayLike<number>, labels: ArrayLike<number>, rates: readonly number[]): DecisionRates[] {
  return rates.map((far) => chooseThreshold(scores, labels, { far }));
}

/** The decision threshold stored in model.json of a binary model. */
export interface StoredDecision {
  threshold: number;
  rule: typeof DECISION_RULE;
  /** 'far=0.03' or 'recall=0.95'. */
  operatingPoint: string;
  /** The images it was chosen on and how it decides on them. */
  chosenOn: 'validation';
  validation: DecisionRates;
  /** How it decides on the test split (never used to choose it). */
  test?: DecisionRates;
  /** 'train' or the calibrate command line. */
  source: string;
  createdAt: string;
}

/** The stored decision from the chooser's result. */
export function storedDecision(op: OperatingPoint, validation: DecisionRates, test: DecisionRates | undefined, source: string): StoredDecision {
  return { threshold: validation.threshold, rule: DECISION_RULE, operatingPoint: formatOperatingPoint(op), chosenOn: 'validation', validation, test, source, createdAt: new Date().toISOString() };
}

/** Metrics of binary scores at a threshold (confusion, accuracy, F1 by the decision rule; ROC-AUC from the scores). */
export function binaryMetricsAt(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold: number, classes: string[]): MetricsReport {
  const yPred = Int32Array.from(scores as ArrayLike<number>, (p) => (p >= threshold ? 1 : 0));
  return computeMetrics({ yTrue: labels, yPred, classes, scores });
}

export interface CalibrateOptions {
  engine?: Engine;
  /** Recorded in model.json's decision.source. */
  command?: string;
  batchSize?: number;
  log?: (line: string) => void;
  /**
   * Set the model's test-time flips (ModelConfig.testTimeFlips) and choose the threshold with them;
   * stored in model.json's architecture together with the threshold. Default: the stored setting.
   */
  testTimeFlips?: boolean;
}

export interface CalibrationResult {
  decision: StoredDecision;
  validation: MetricsReport;
  test: MetricsReport | null;
  /** The threshold stored before (null: none, 0.5 applied). */
  previousThreshold: number | null;
}

/**
 * Chooses the threshold of a binary model directory for `op` on the validation split recorded in its
 * model.json (the images under `dataDir`, by their 'folder/file' keys), and rewrites model.json
 * atomically with `decision` and metrics.validation / metrics.test at that threshold.
 */
export async function calibrateModelDir(modelDir: string, dataDir: string, op: OperatingPoint, options: CalibrateOptions = {}): Promise<CalibrationResult> {
  checkOperatingPoint(op);
  const insp = await Inspector.load(modelDir, { engine: options.engine, batchSize: options.batchSize, testTimeFlips: options.testTimeFlips });
  try {
    const meta = insp.meta;
    if (meta.task !== 'binary') throw new OperatingPointError(`${modelDir} is a ${meta.task} model; decision thresholds are for binary (good/defect) models`);
    const split = meta.split as Partial<SplitDescription> | undefined;
    if (!split?.files?.val) throw new OperatingPointError(`${join(modelDir, MODEL_JSON)} records no split file lists, so its validation images are unknown`);
    if (split.files.val.length === 0) throw new OperatingPointError(`${modelDir} was trained without a validation split (e.g. --limit-per-class); there is nothing to calibrate on`);
    const scanned = await scanDataset(dataDir, 'binary', { allowSingleClass: true });
    const mapped = mapToModelClasses(scanned, meta.classes);
    const idx = splitFromDescription(mapped.items, { files: split.files });
    const missingHere = idx.missing.filter((k) => split.files!.val.includes(k) || (split.files!.test ?? []).includes(k));
    if (missingHere.length)
      throw new OperatingPointError(
        `${missingHere.length} image(s) of the recorded validation/test split are not in ${dataDir} (e.g. ${missingHere.slice(0, 3).join(', ')}): pass the dataset the model was trained on`,
      );
    const score = async (indices: number[]) => {
      const results = await insp.inspectBatch(indices.map((i) => mapped.items[i].path));
      return { scores: results.map((r) => r.scores[meta.classes[1]]), labels: indices.map((i) => mapped.items[i].label) };
    };
    const val = await score(idx.val);
    options.log?.(`validation: ${val.labels.filter((l) => l === 0).length} good, ${val.labels.filter((l) => l === 1).length} defect images`);
    const chosen = chooseThreshold(val.scores, val.labels, op);
    const test = idx.test.length ? await score(idx.test) : null;
    const testRates = test ? ratesAt(test.scores, test.labels, chosen.threshold) : undefined;
    const decision = storedDecision(op, chosen, testRates, options.command ?? 'calibrateModelDir');
    const validation = binaryMetricsAt(val.scores, val.labels, chosen.threshold, meta.classes);
    const testMetrics = test ? binaryMetricsAt(test.scores, test.labels, chosen.threshold, meta.classes) : null;
    const previousThreshold = meta.decision?.threshold ?? null;
    // Every other field of model.json is kept as it is (read raw, not through the typed metadata).
    const path = join(modelDir, MODEL_JSON);
    const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown> & { metrics?: Record<string, unknown> };
    raw.decision = decision;
    if (options.testTimeFlips !== undefined) raw.architecture = { ...(raw.architecture as object), testTimeFlips: options.testTimeFlips };
    raw.metrics = { ...(raw.metrics ?? {}), validation, ...(testMetrics ? { test: testMetrics } : {}) };
    writeFileAtomic(path, [new TextEncoder().encode(JSON.stringify(raw, null, 2) + '\n')]);
    return { decision, validation, test: testMetrics, previousThreshold };
  } finally {
    insp.dispose();
  }
}

/** ROC-AUC of binary scores, null when one class is absent. */
export function binaryAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number | null {
  const auc = rocAuc(labels, scores);
  return Number.isNaN(auc) ? null : auc;
}
