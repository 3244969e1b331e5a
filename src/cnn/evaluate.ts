// Evaluating a trained model on a dataset folder (the CLI's `eval`).
import type { Engine } from '../gpu/engine.js';
import { mapToModelClasses, scanDataset } from '../data/dataset.js';
import { ImageDecodeError } from '../data/images.js';
import { WgslNnError } from '../gpu/errors.js';
import { computeMetrics, type MetricsReport } from '../eval/metrics.js';
import { Inspector } from './inspector.js';
import { chooseThreshold, ratesAt, type DecisionRates } from './calibration.js';

/** The false-alarm budgets eval reports defect recall at. */
export const REPORTED_FALSE_ALARM_RATES = [0.01, 0.03, 0.05] as const;

/** Binary models: how the model decides on the evaluated images, and what other thresholds would give. */
export interface OperatingPointReport {
  /** The threshold used for the confusion matrix and accuracy: the model's stored one, or 0.5 if none. */
  threshold: number;
  thresholdSource: 'model' | 'default';
  /** The stored operating point it was chosen for (e.g. 'far=0.03'), if any. */
  operatingPoint: string | null;
  /** Good recall (good parts called good), defect recall and false alarms at `threshold`. */
  atThreshold: DecisionRates;
  /**
   * Defect recall at 1 %, 3 % and 5 % false alarms, each with a threshold chosen on the evaluated images
   * themselves (the rule of calibration.ts): what the model could reach, not what it decides (an in-sample, optimistic figure).
   */
  atFalseAlarmRates: { targetFalseAlarmRate: number; thresholdChosenOn: 'evaluated data'; rates: DecisionRates | null; error?: string }[];
}

export interface EvaluateOptions {
  engine?: Engine;
  /** 'skip' leaves unreadable images out (listed in the result); 'fail' stops at the first. */
  onBadImage?: 'skip' | 'fail';
  /** Drop data folders the model does not know instead of failing with a class mismatch. */
  skipUnknownClasses?: boolean;
  batchSize?: number;
}

export interface EvaluationResult extends MetricsReport {
  model: string;
  data: string;
  skipped: { path: string; reason: string }[];
  skippedFolders: string[];
  /** Binary models only. */
  operatingPoints?: OperatingPointReport;
}

/**
 * Runs the model on every image of `dataDir` and computes accuracy, macro F1, the confusion matrix
 * (and for binary models ROC-AUC and the operating points: decisions at the model's threshold, and
 * defect recall at 1/3/5 % false alarms). Folders are mapped to the model's classes: for a binary model
 * good/free/ok/normal are 'good' and every other folder 'defect'.
 */
export async function evaluateModel(modelDir: string, dataDir: string, options: EvaluateOptions = {}): Promise<EvaluationResult> {
  const insp = await Inspector.load(modelDir, { engine: options.engine, batchSize: options.batchSize });
  try {
    const task = insp.meta.task;
    const scanned = await scanDataset(dataDir, task, { allowSingleClass: true });
    const mapped = mapToModelClasses(scanned, insp.classes, { skipUnknown: options.skipUnknownClasses });
    const skipped: { path: string; reason: string }[] = [];
    const yTrue: number[] = [];
    const yPred: number[] = [];
    const scores: number[] = [];
    const bs = options.batchSize ?? 32;
    for (let s = 0; s < mapped.items.length; s += bs) {
      const chunk = mapped.items.slice(s, s + bs);
      let results;
      try {
        results = await insp.inspectBatch(chunk.map((it) => it.path));
      } catch (e) {
        if (!(e instanceof ImageDecodeError) || options.onBadImage !== 'skip') throw e;
        // Retry one by one to keep the readable images of this chunk.
        results = [];
        for (const it of chunk) {
          try {
            results.push(await insp.inspect(it.path));
          } catch (err) {
            if (!(err instanceof ImageDecodeError)) throw err;
            skipped.push({ path: it.path, reason: err.message });
            results.push(null);
          }
        }
      }
      results.forEach((r, i) => {
        if (!r) return;
        yTrue.push(chunk[i].label);
        yPred.push(insp.classes.indexOf(r.label));
        if (task === 'binary') scores.push(r.scores[insp.classes[1]]);
        else for (const c of insp.classes) scores.push(r.scores[c]);
      });
    }
    const metrics = computeMetrics({ yTrue, yPred, classes: insp.classes, scores });
    const result: EvaluationResult = { ...metrics, model: modelDir, data: dataDir, skipped, skippedFolders: mapped.skippedFolders };
    if (task === 'binary') result.operatingPoints = operatingPointReport(insp, scores, yTrue);
    return result;
  } finally {
    insp.dispose();
  }
}

function operatingPointReport(insp: Inspector, scores: number[], labels: number[]): OperatingPointReport {
  const threshold = insp.threshold!;
  const stored = insp.meta.decision;
  return {
    threshold,
    thresholdSource: stored ? 'model' : 'default',
    operatingPoint: stored?.operatingPoint ?? null,
    atThreshold: ratesAt(scores, labels, threshold),
    atFalseAlarmRates: REPORTED_FALSE_ALARM_RATES.map((far) => {
      try {
        return { targetFalseAlarmRate: far, thresholdChosenOn: 'evaluated data' as const, rates: chooseThreshold(scores, labels, { far }) };
      } catch (e) {
        if (!(e instanceof WgslNnError)) throw e;
        return { targetFalseAlarmRate: far, thresholdChosenOn: 'evaluated data' as const, rates: null, error: e.message };
      }
    }),
  };
}

/** The operating-point lines of `eval` for the console. */
export function formatOperatingPoints(r: OperatingPointReport): string {
  const pct = (v: number) => (Number.isNaN(v) ? 'n/a' : `${(100 * v).toFixed(1)} %`);
  const a = r.atThreshold;
  const lines = [
    `decision threshold ${r.threshold.toFixed(4)} (${r.thresholdSource === 'model' ? `stored in the model, chosen on its validation split for ${r.operatingPoint}` : 'default 0.5: the model stores none'}); rule: defect when P(defect) >= threshold`,
    `  at it: good called good ${pct(a.goodRecall)} (${a.good - a.falseAlarms}/${a.good}), defect recall ${pct(a.defectRecall)} (${a.defect - a.missed}/${a.defect}), false alarms ${pct(a.falseAlarmRate)}`,
    'defect recall at a false-alarm budget, thresholds chosen on these same images (in-sample, optimistic):',
    ...r.atFalseAlarmRates.map((o) =>
      o.rates
        ? `  far <= ${pct(o.targetFalseAlarmRate)}: defect recall ${pct(o.rates.defectRecall)}, actual false alarms ${pct(o.rates.falseAlarmRate)}, threshold ${o.rates.threshold.toFixed(4)}`
        : `  far <= ${pct(o.targetFalseAlarmRate)}: n/a (${o.error})`,
    ),
  ];
  return lines.join('\n');
}
