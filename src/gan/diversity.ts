// Mode-collapse alarm. A collapsed generator maps many noise vectors to (nearly) the same image, so
// the spread of its samples shrinks while its losses can look healthy. Every epoch the trainer
// generates a fixed batch (fixed noise, every class) and compares the mean pairwise distance of those
// samples to that of real images of the same classes:
//
//   diversity = mean_{i<j} |g_i - g_j| / mean_{i<j} |r_i - r_j|      (per class, then averaged)
//
// ~1 means the samples are as varied as real images; a value near 0 means collapse. The alarm fires
// when the ratio falls below a fraction of the best value seen so far (collapse usually happens
// suddenly, after a healthy start), or, after a few warm-up epochs (a freshly initialised generator
// draws near-constant images), below an absolute floor.
import { WgslNnError } from '../gpu/errors.js';

/** Mean Euclidean distance over all pairs of rows of x ([n, d] flattened, n >= 2). */
export function meanPairwiseDistance(x: ArrayLike<number>, n: number): number {
  if (n < 2) throw new WgslNnError('meanPairwiseDistance needs at least two samples');
  const d = x.length / n;
  let sum = 0;
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) {
        const t = x[i * d + k] - x[j * d + k];
        s += t * t;
      }
      sum += Math.sqrt(s);
    }
  return sum / ((n * (n - 1)) / 2);
}

/** Rows of `x` ([n, d]) whose label is `k`, packed. */
function rowsOf(x: Float32Array, labels: ArrayLike<number>, k: number): { rows: Float32Array; n: number } {
  const d = x.length / labels.length;
  const idx = Array.from(labels).flatMap((l, i) => (l === k ? [i] : []));
  const rows = new Float32Array(idx.length * d);
  idx.forEach((i, r) => rows.set(x.subarray(i * d, (i + 1) * d), r * d));
  return { rows, n: idx.length };
}

/**
 * Sample diversity relative to real images, per class and averaged over the classes present in both
 * sets with at least two images each.
 */
export function relativeDiversity(
  generated: Float32Array,
  generatedLabels: ArrayLike<number>,
  real: Float32Array,
  realLabels: ArrayLike<number>,
  classes: number,
): { mean: number; perClass: (number | null)[] } {
  const perClass: (number | null)[] = [];
  for (let k = 0; k < classes; k++) {
    const g = rowsOf(generated, generatedLabels, k);
    const r = rowsOf(real, realLabels, k);
    if (g.n < 2 || r.n < 2) {
      perClass.push(null);
      continue;
    }
    const realSpread = meanPairwiseDistance(r.rows, r.n);
    perClass.push(realSpread > 0 ? meanPairwiseDistance(g.rows, g.n) / realSpread : null);
  }
  const valid = perClass.filter((v): v is number => v !== null);
  if (!valid.length) throw new WgslNnError('relativeDiversity: no class has two generated and two real images');
  return { mean: valid.reduce((a, b) => a + b, 0) / valid.length, perClass };
}

export interface CollapseAlarmOptions {
  /** Fire below this ratio to real diversity (default 0.25). */
  floor?: number;
  /** Fire when the ratio drops below this fraction of the best seen (default 0.4). */
  dropFraction?: number;
  /** The floor applies from this many checks on (default 5). */
  warmup?: number;
}

/** Tracks the diversity per epoch and says when it has collapsed. */
export class CollapseAlarm {
  private best = 0;
  private readonly floor: number;
  private readonly dropFraction: number;
  private readonly warmup: number;
  private checks = 0;

  constructor(options: CollapseAlarmOptions = {}) {
    this.floor = options.floor ?? 0.25;
    this.dropFraction = options.dropFraction ?? 0.4;
    this.warmup = options.warmup ?? 5;
  }

  /** Records one epoch's diversity; returns a warning text when it indicates collapse, else null. */
  check(diversity: number): string | null {
    this.best = Math.max(this.best, diversity);
    if (++this.checks > this.warmup && diversity < this.floor)
      return `mode collapse: sample diversity is ${diversity.toFixed(3)} of the real images' (alarm below ${this.floor})`;
    if (diversity < this.dropFraction * this.best)
      return `mode collapse: sample diversity fell to ${diversity.toFixed(3)} from a best of ${this.best.toFixed(3)} (alarm below ${(this.dropFraction * 100).toFixed(0)} % of the best)`;
    return null;
  }

  /** For checkpoints. */
  get state(): { best: number; checks: number } {
    return { best: this.best, checks: this.checks };
  }
  set state(s: { best: number; checks: number }) {
    this.best = s.best;
    this.checks = s.checks;
  }
}
