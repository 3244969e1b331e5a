// Classification metrics on the CPU: accuracy, per-class precision/recall/F1, macro F1, confusion
// matrix (rows = true class, columns = predicted class) and, for binary tasks, ROC-AUC.
//
// Conventions: precision of a class never predicted, recall of a class with no true samples and F1
// when precision + recall = 0 are all 0 (not NaN). Macro F1 is the unweighted mean over every class
// in `classes`, including classes with no support. ROC-AUC is the Mann-Whitney statistic
// P(score of a random positive > score of a random negative) + 0.5 P(equal), computed from average
// ranks; it is null when the labels hold only one class. The positive class is index 1.

export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  /** Number of true samples of the class. */
  support: number;
}

export interface MetricsReport {
  accuracy: number;
  macroF1: number;
  perClass: Record<string, ClassMetrics>;
  /** confusion[t][p] = number of samples of true class t predicted as p. */
  confusion: number[][];
  classes: string[];
  count: number;
  /** Binary tasks with scores only; null when only one class is present in the labels. */
  rocAuc?: number | null;
}

function checkLabels(name: string, a: ArrayLike<number>, k: number): void {
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (!Number.isInteger(v) || v < 0 || v >= k) throw new RangeError(`metrics: ${name}[${i}] = ${v} is not a class index 0..${k - 1}`);
  }
}

export function confusionMatrix(yTrue: ArrayLike<number>, yPred: ArrayLike<number>, numClasses: number): number[][] {
  if (yTrue.length !== yPred.length) throw new RangeError(`metrics: ${yTrue.length} true labels but ${yPred.length} predictions`);
  checkLabels('yTrue', yTrue, numClasses);
  checkLabels('yPred', yPred, numClasses);
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < yTrue.length; i++) m[yTrue[i]][yPred[i]]++;
  return m;
}

/**
 * ROC-AUC from binary labels (1 = positive) and scores (higher = more positive), by the rank-sum
 * (Mann-Whitney U) with average ranks for ties. NaN when either class is absent.
 */
export function rocAuc(yTrue: ArrayLike<number>, scores: ArrayLike<number>): number {
  const n = yTrue.length;
  if (scores.length !== n) throw new RangeError(`rocAuc: ${n} labels but ${scores.length} scores`);
  for (let i = 0; i < n; i++) if (Number.isNaN(scores[i])) throw new RangeError(`rocAuc: score ${i} is NaN`);
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let nPos = 0;
  let rankSumPos = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[idx[j + 1]] === scores[idx[i]]) j++;
    const avgRank = (i + j) / 2 + 1; // ranks are 1-based
    for (let k = i; k <= j; k++) {
      if (yTrue[idx[k]] === 1) {
        nPos++;
        rankSumPos += avgRank;
      }
    }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSumPos - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}

/** Index of the largest value in each row of a [N, K] row-major array. */
export function argmaxRows(probs: ArrayLike<number>, k: number): Int32Array {
  const n = Math.floor(probs.length / k);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (probs[i * k + j] > probs[i * k + best]) best = j;
    out[i] = best;
  }
  return out;
}

export interface MetricsInput {
  yTrue: ArrayLike<number>;
  yPred: ArrayLike<number>;
  classes: readonly string[];
  /**
   * Optional scores: either one score per sample for the positive class (index 1), or the
   * [N, K] row-major class probabilities. Used for ROC-AUC when there are 2 classes.
   */
  scores?: ArrayLike<number>;
}

export function computeMetrics(input: MetricsInput): MetricsReport {
  const { yTrue, yPred } = input;
  const classes = input.classes.slice();
  const k = classes.length;
  const confusion = confusionMatrix(yTrue, yPred, k);
  const n = yTrue.length;
  let correct = 0;
  for (let c = 0; c < k; c++) correct += confusion[c][c];
  const perClass: Record<string, ClassMetrics> = {};
  let f1Sum = 0;
  for (let c = 0; c < k; c++) {
    const tp = confusion[c][c];
    let support = 0;
    let predicted = 0;
    for (let j = 0; j < k; j++) {
      support += confusion[c][j];
      predicted += confusion[j][c];
    }
    const precision = predicted > 0 ? tp / predicted : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    perClass[classes[c]] = { precision, recall, f1, support };
    f1Sum += f1;
  }
  const report: MetricsReport = {
    accuracy: n > 0 ? correct / n : 0,
    macroF1: k > 0 ? f1Sum / k : 0,
    perClass,
    confusion,
    classes,
    count: n,
  };
  if (k === 2 && input.scores) {
    const s = input.scores;
    let pos: ArrayLike<number>;
    if (s.length === n) pos = s;
    else if (s.length === 2 * n) {
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = s[2 * i + 1];
      pos = a;
    } else throw new RangeError(`metrics: ${s.length} scores for ${n} samples (expected ${n} or ${2 * n})`);
    const yBin = new Int32Array(n);
    for (let i = 0; i < n; i++) yBin[i] = yTrue[i] === 1 ? 1 : 0;
    const auc = rocAuc(yBin, pos);
    report.rocAuc = Number.isNaN(auc) ? null : auc;
  }
  return report;
}

/** A plain-text table of a report, for the console. */
export function formatReport(r: MetricsReport): string {
  const w = Math.max(9, ...r.classes.map((c) => c.length));
  const f = (v: number): string => v.toFixed(3).padStart(9);
  const lines = [
    `${'class'.padEnd(w)} ${'precision'.padStart(9)} ${'recall'.padStart(9)} ${'f1'.padStart(9)} ${'support'.padStart(9)}`,
    ...r.classes.map((c) => {
      const m = r.perClass[c];
      return `${c.padEnd(w)} ${f(m.precision)} ${f(m.recall)} ${f(m.f1)} ${String(m.support).padStart(9)}`;
    }),
    '',
    `accuracy ${r.accuracy.toFixed(4)}  macro F1 ${r.macroF1.toFixed(4)}  n = ${r.count}` +
      (r.rocAuc !== undefined ? `  ROC-AUC ${r.rocAuc === null ? 'n/a (one class only)' : r.rocAuc.toFixed(4)}` : ''),
    '',
    'confusion (rows = true, columns = predicted):',
    `${''.padEnd(w)} ${r.classes.map((_, j) => String(j).padStart(6)).join('')}`,
    ...r.confusion.map((row, i) => `${`${i} ${r.classes[i]}`.padEnd(w)} ${row.map((v) => String(v).padStart(6)).join('')}`),
  ];
  return lines.join('\n');
}
