// Metrics of an anomaly detector: the decision threshold at a false-alarm rate, recalls at a
// threshold, and a pixel-level ROC-AUC over millions of map pixels.
//
// Pixel ROC-AUC is binned: each pixel's value goes to one of 2^15 bins on a log2 scale spanning
// 2^-20 .. 2^12 (1024 bins per octave, values beyond the ends go to the end bins); AUC is then the
// Mann-Whitney statistic over the bins, pairs in the same bin counting one half. Two values closer
// than 0.07 % of their size may tie, so the result is within a hair of the exact (sort-based) AUC and
// costs O(pixels) time and 256 KiB of memory however many images are added.
import { WgslNnError } from '../gpu/errors.js';

/**
 * The decision threshold for a false-alarm rate on good images' scores: the smallest score t such that at
 * most `rate` of them are > t (a score > t is a defect). With n images this is the ceil(n (1 - rate))-th
 * smallest score.
 */
export function thresholdAtFalseAlarmRate(goodScores: ArrayLike<number>, rate: number): number {
  if (!(rate >= 0 && rate < 1)) throw new WgslNnError(`false-alarm rate must be in [0, 1), got ${rate}`);
  const n = goodScores.length;
  if (n === 0) throw new WgslNnError('cannot choose a threshold without good images');
  const sorted = Float64Array.from(goodScores).sort();
  const k = Math.max(1, Math.ceil(n * (1 - rate) - 1e-9));
  return sorted[k - 1];
}

/** Share of scores above the threshold (flagged as defects). */
export function flaggedShare(scores: ArrayLike<number>, threshold: number): number {
  if (scores.length === 0) return NaN;
  let k = 0;
  for (let i = 0; i < scores.length; i++) if (scores[i] > threshold) k++;
  return k / scores.length;
}

const BINS = 1 << 15;
const LOG_MIN = -20;
const LOG_MAX = 12;
const PER_OCTAVE = BINS / (LOG_MAX - LOG_MIN);

function binOf(v: number): number {
  if (!(v > 0)) return 0; // 0, negatives and NaN-free values at or below 0 go to the lowest bin
  const b = Math.floor((Math.log2(v) - LOG_MIN) * PER_OCTAVE);
  return b < 0 ? 0 : b >= BINS ? BINS - 1 : b;
}

/** Accumulates (map value, is-defect pixel) pairs; `auroc()` is the pixel-level ROC-AUC. */
export class PixelAuroc {
  private readonly pos = new Float64Array(BINS);
  private readonly neg = new Float64Array(BINS);
  positives = 0;
  negatives = 0;

  /** Adds a map and its mask of the same size (mask value >= maskThreshold = defect pixel). */
  add(map: ArrayLike<number>, mask: ArrayLike<number>, maskThreshold = 128): void {
    if (map.length !== mask.length) throw new WgslNnError(`pixel AUROC: map of ${map.length} pixels, mask of ${mask.length}`);
    for (let i = 0; i < map.length; i++) {
      const v = map[i];
      if (Number.isNaN(v)) throw new WgslNnError(`pixel AUROC: map value ${i} is NaN`);
      if (mask[i] >= maskThreshold) {
        this.pos[binOf(v)]++;
        this.positives++;
      } else {
        this.neg[binOf(v)]++;
        this.negatives++;
      }
    }
  }

  /** ROC-AUC, or null without both defect and defect-free pixels. */
  auroc(): number | null {
    if (this.positives === 0 || this.negatives === 0) return null;
    let negBelow = 0;
    let u = 0;
    for (let b = 0; b < BINS; b++) {
      u += this.pos[b] * (negBelow + this.neg[b] / 2);
      negBelow += this.neg[b];
    }
    return u / (this.positives * this.negatives);
  }
}
