// Evaluating a trained model on a dataset folder (the CLI's `eval`).
import type { Engine } from '../gpu/engine.js';
import { mapToModelClasses, scanDataset } from '../data/dataset.js';
import { ImageDecodeError } from '../data/images.js';
import { computeMetrics, type MetricsReport } from '../eval/metrics.js';
import { Inspector } from './inspector.js';

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
}

/**
 * Runs the model on every image of `dataDir` and computes accuracy, macro F1, the confusion matrix
 * (and ROC-AUC for binary models). Folders are mapped to the model's classes: for a binary model
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
    return { ...metrics, model: modelDir, data: dataDir, skipped, skippedFolders: mapped.skippedFolders };
  } finally {
    insp.dispose();
  }
}
