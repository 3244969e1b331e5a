// The decision-threshold rule of src/cnn/calibration.ts on synthetic scores (CPU only): far and recall
// targets, ties, the integer boundary of a rate, unreachable targets and malformed operating points.
import { describe, expect, it } from 'vitest';
import { chooseThreshold, OperatingPointError, parseOperatingPoint, ratesAt, recallAtFalseAlarmRates } from '../src/cnn/calibration.js';
import { Rng } from '../src/util/rng.js';

/** Scores and labels (0 good, 1 defect) from two lists. */
function scored(good: number[], defect: number[]): { scores: number[]; labels: number[] } {
  return { scores: [...good, ...defect], labels: [...good.map(() => 0), ...defect.map(() => 1)] };
}

// Distinct sorted scores: 0.1 0.2 0.3 0.35 0.4 0.5 0.8 0.9 0.95 (goods 0.1 0.2 0.3 0.4 0.9; defects 0.35 0.5 0.8 0.95).
const { scores, labels } = scored([0.1, 0.2, 0.3, 0.4, 0.9], [0.35, 0.5, 0.8, 0.95]);

describe('chooseThreshold', () => {
  it('far=x: the smallest midpoint threshold whose false-alarm rate is <= x', () => {
    const r = chooseThreshold(scores, labels, { far: 0.2 }); // 5 good: 1 false alarm allowed
    expect(r.threshold).toBeCloseTo(0.45, 12); // between good 0.4 and defect 0.5
    expect(r).toMatchObject({ falseAlarms: 1, good: 5, defect: 4, missed: 1, falseAlarmRate: 0.2, goodRecall: 0.8, defectRecall: 0.75 });
    const zero = chooseThreshold(scores, labels, { far: 0 });
    expect(zero.threshold).toBeCloseTo(0.925, 12); // above the highest good (0.9), below the defect at 0.95
    expect(zero).toMatchObject({ falseAlarms: 0, defectRecall: 0.25 });
    // A budget between counts rounds down: 0.39 of 5 good images allows 1.
    expect(chooseThreshold(scores, labels, { far: 0.39 }).threshold).toBeCloseTo(0.45, 12);
  });

  it('recall=x: the largest midpoint threshold whose defect recall is >= x', () => {
    const r = chooseThreshold(scores, labels, { recall: 0.75 });
    expect(r.threshold).toBeCloseTo(0.45, 12); // the 3rd defect from the top is 0.5; below it the good 0.4
    expect(r).toMatchObject({ defectRecall: 0.75, falseAlarms: 1 });
    const all = chooseThreshold(scores, labels, { recall: 1 });
    expect(all.threshold).toBeCloseTo(0.325, 12); // between good 0.3 and the lowest defect 0.35
    expect(all).toMatchObject({ defectRecall: 1, falseAlarms: 2 });
    // Below the lowest score: halfway to 0, and every image is called defect.
    const low = scored([0.5, 0.6], [0.2, 0.7]);
    const r2 = chooseThreshold(low.scores, low.labels, { recall: 1 });
    expect(r2.threshold).toBeCloseTo(0.1, 12);
    expect(r2).toMatchObject({ falseAlarms: 2, defectRecall: 1 });
  });

  it('the rate boundary is exact in counts: far=0.05 of 20 good images allows exactly one false alarm', () => {
    const good = Array.from({ length: 20 }, (_, i) => 0.01 + i * 0.01); // 0.01 .. 0.20
    const s = scored(good, [0.195, 0.5]);
    const r = chooseThreshold(s.scores, s.labels, { far: 0.05 });
    expect(r.falseAlarms).toBe(1); // the good 0.20 only
    expect(r.threshold).toBeCloseTo((0.19 + 0.195) / 2, 12);
    expect(r.defectRecall).toBe(1);
  });

  it('tied scores stay on one side: a good and a defect image with equal scores cannot be separated', () => {
    const s = scored([0.1, 0.5], [0.5, 0.9]);
    const strict = chooseThreshold(s.scores, s.labels, { far: 0 });
    expect(strict.threshold).toBeCloseTo(0.7, 12); // above the tie: the tied defect is missed
    expect(strict).toMatchObject({ falseAlarms: 0, missed: 1 });
    const all = chooseThreshold(s.scores, s.labels, { recall: 1 });
    expect(all.threshold).toBeCloseTo(0.3, 12); // below the tie: the tied good is a false alarm
    expect(all).toMatchObject({ falseAlarms: 1, missed: 0 });
  });

  it('the rule is P(defect) >= threshold: a score equal to the threshold is a defect', () => {
    expect(ratesAt([0.4, 0.4], [0, 1], 0.4)).toMatchObject({ falseAlarms: 1, missed: 0 });
    expect(ratesAt([0.4, 0.4], [0, 1], 0.40000001)).toMatchObject({ falseAlarms: 0, missed: 1 });
  });

  it('a false-alarm target no threshold can meet is an OperatingPointError naming the lowest reachable rate', () => {
    // Two of three good images score exactly 1.0 (a saturated sigmoid): p >= t for every t in [0, 1].
    const s = scored([1, 1, 0.2], [1, 0.9]);
    expect(() => chooseThreshold(s.scores, s.labels, { far: 0.3 })).toThrow(OperatingPointError);
    expect(() => chooseThreshold(s.scores, s.labels, { far: 0.3 })).toThrow(/lowest reachable false-alarm rate is 0\.6667/);
    expect(chooseThreshold(s.scores, s.labels, { far: 0.7 })).toMatchObject({ threshold: 0.55, falseAlarms: 2, defectRecall: 1 });
  });

  it('needs both classes and valid scores', () => {
    expect(() => chooseThreshold([0.1, 0.2], [0, 0], { far: 0.1 })).toThrow(/good and defect images; got 2 good and 0 defect/);
    expect(() => chooseThreshold([0.1, NaN], [0, 1], { far: 0.1 })).toThrow(/score 1 is NaN/);
    expect(() => chooseThreshold([0.1, 0.2], [0, 2], { far: 0.1 })).toThrow(/label 1 is 2/);
    expect(() => chooseThreshold([0.1], [0, 1], { far: 0.1 })).toThrow(/1 scores but 2 labels/);
  });

  it('on random tied scores: meets the target, and the next candidate towards more defects (far) or fewer (recall) would not', () => {
    const rng = new Rng(7);
    for (let trial = 0; trial < 200; trial++) {
      const n = 3 + rng.int(40);
      const sc: number[] = [];
      const lb: number[] = [];
      for (let i = 0; i < n; i++) {
        const y = i < 2 ? i : rng.int(2); // both classes present
        lb.push(y);
        sc.push(Math.round((y ? 0.3 : 0) + rng.uniform(0, 0.7) * 20) / 20); // few distinct values: many ties
      }
      const distinct = [...new Set(sc)].sort((a, b) => a - b);
      const far = Math.round(rng.uniform(0, 0.5) * 100) / 100;
      const f = chooseThreshold(sc, lb, { far });
      expect(f.falseAlarms).toBeLessThanOrEqual(far * f.good + 1e-9);
      if (f.threshold > 0) expect(sc).not.toContain(f.threshold); // 0 is the threshold that calls all, even a score of 0
      const below = distinct.filter((v) => v < f.threshold).pop();
      if (below !== undefined) expect(ratesAt(sc, lb, below).falseAlarms).toBeGreaterThan(far * f.good + 1e-9);
      const recall = Math.round(rng.uniform(0.05, 1) * 100) / 100;
      const r = chooseThreshold(sc, lb, { recall });
      expect(r.defect - r.missed).toBeGreaterThanOrEqual(recall * r.defect - 1e-9);
      if (r.threshold > 0) expect(sc).not.toContain(r.threshold);
      const above = distinct.find((v) => v > r.threshold);
      if (above !== undefined) expect(ratesAt(sc, lb, above + 1e-12).defect - ratesAt(sc, lb, above + 1e-12).missed).toBeLessThan(recall * r.defect - 1e-9);
    }
  });

  it('recallAtFalseAlarmRates: one chosen threshold per budget', () => {
    const r = recallAtFalseAlarmRates(scores, labels, [0, 0.2]);
    expect(r.map((x) => x.defectRecall)).toEqual([0.25, 0.75]);
  });
});

describe('parseOperatingPoint', () => {
  it('reads far=x and recall=x', () => {
    expect(parseOperatingPoint('far=0.03')).toEqual({ far: 0.03 });
    expect(parseOperatingPoint('recall=0.95')).toEqual({ recall: 0.95 });
    expect(parseOperatingPoint(' FAR = 0 ')).toEqual({ far: 0 });
  });

  it.each([
    ['far=1', /false-alarm rate must be a fraction in \[0, 1\), got 1/],
    ['far=-0.1', /in \[0, 1\)/],
    ['recall=0', /defect recall must be a fraction in \(0, 1\], got 0/],
    ['recall=1.5', /got 1\.5/],
    ['far=abc', /got NaN/],
    ['precision=0.9', /must be far=<rate> or recall=<rate>/],
    ['0.03', /must be far=<rate> or recall=<rate>/],
  ])('rejects %s', (text, message) => {
    expect(() => parseOperatingPoint(text)).toThrow(OperatingPointError);
    expect(() => parseOperatingPoint(text)).toThrow(message);
  });
});
