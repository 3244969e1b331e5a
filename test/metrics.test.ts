// Metrics against hand-computed values, and the PNG plots.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { argmaxRows, computeMetrics, confusionMatrix, formatReport, rocAuc } from '../src/eval/metrics.js';
import { confusionSvg, curvesSvg, escapeXml, niceTicks, writeConfusionPng, writeCurvesPng } from '../src/eval/plots.js';

describe('computeMetrics', () => {
  // 3 classes, 10 samples:
  //   true: 0 0 0 1 1 1 1 2 2 2
  //   pred: 0 0 1 1 1 2 1 2 0 0
  // confusion (rows true, cols pred): [2 1 0] [0 3 1] [2 0 1]
  // precision: 2/4, 3/4, 1/2; recall: 2/3, 3/4, 1/3; f1: 4/7, 3/4, 2/5; macro F1 = 241/420
  const yTrue = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2];
  const yPred = [0, 0, 1, 1, 1, 2, 1, 2, 0, 0];
  const classes = ['crack', 'pit', 'scratch'];

  it('3-class confusion matrix, accuracy, per-class P/R/F1 and macro F1', () => {
    const r = computeMetrics({ yTrue, yPred, classes });
    expect(r.confusion).toEqual([
      [2, 1, 0],
      [0, 3, 1],
      [2, 0, 1],
    ]);
    expect(r.accuracy).toBeCloseTo(0.6, 12);
    expect(r.count).toBe(10);
    expect(r.classes).toEqual(classes);
    expect(r.perClass.crack.precision).toBeCloseTo(0.5, 12);
    expect(r.perClass.crack.recall).toBeCloseTo(2 / 3, 12);
    expect(r.perClass.crack.f1).toBeCloseTo(4 / 7, 12);
    expect(r.perClass.crack.support).toBe(3);
    expect(r.perClass.pit).toEqual({ precision: 0.75, recall: 0.75, f1: 0.75, support: 4 });
    expect(r.perClass.scratch.precision).toBeCloseTo(0.5, 12);
    expect(r.perClass.scratch.recall).toBeCloseTo(1 / 3, 12);
    expect(r.perClass.scratch.f1).toBeCloseTo(0.4, 12);
    expect(r.macroF1).toBeCloseTo(241 / 420, 12);
    expect(r.rocAuc).toBeUndefined();
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });

  it('undefined precision/recall/F1 are 0 (class never predicted, class with no samples)', () => {
    // class 2 has no true samples and is never predicted; class 1 is never predicted.
    const r = computeMetrics({ yTrue: [0, 0, 1, 1], yPred: [0, 0, 0, 0], classes: ['a', 'b', 'c'] });
    expect(r.perClass.b).toEqual({ precision: 0, recall: 0, f1: 0, support: 2 });
    expect(r.perClass.c).toEqual({ precision: 0, recall: 0, f1: 0, support: 0 });
    expect(r.perClass.a.precision).toBeCloseTo(0.5, 12);
    expect(r.perClass.a.recall).toBe(1);
    expect(r.perClass.a.f1).toBeCloseTo(2 / 3, 12);
    expect(r.macroF1).toBeCloseTo(2 / 9, 12); // mean over all three classes
    expect(r.accuracy).toBe(0.5);
  });

  it('empty input and bad labels', () => {
    const r = computeMetrics({ yTrue: [], yPred: [], classes: ['a', 'b'] });
    expect(r.accuracy).toBe(0);
    expect(r.count).toBe(0);
    expect(() => confusionMatrix([0, 3], [0, 1], 3)).toThrow(/yTrue\[1\] = 3/);
    expect(() => confusionMatrix([0], [0, 1], 3)).toThrow(/1 true labels but 2 predictions/);
  });

  it('binary report includes ROC-AUC from positive-class scores or from [N, 2] probabilities', () => {
    const yT = [0, 0, 1, 1, 0, 1];
    const s = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4];
    const r1 = computeMetrics({ yTrue: yT, yPred: s.map((v) => (v >= 0.5 ? 1 : 0)), classes: ['good', 'defect'], scores: s });
    expect(r1.rocAuc).toBeCloseTo(2 / 3, 12);
    const probs = s.flatMap((v) => [1 - v, v]);
    const r2 = computeMetrics({ yTrue: yT, yPred: argmaxRows(probs, 2), classes: ['good', 'defect'], scores: probs });
    expect(r2.rocAuc).toBeCloseTo(2 / 3, 12);
    expect(r2.confusion).toEqual([
      [3, 0],
      [2, 1],
    ]);
    const one = computeMetrics({ yTrue: [1, 1], yPred: [1, 0], classes: ['good', 'defect'], scores: [0.9, 0.2] });
    expect(one.rocAuc).toBeNull();
    expect(() => computeMetrics({ yTrue: yT, yPred: yT, classes: ['good', 'defect'], scores: [1, 2, 3] })).toThrow(/3 scores for 6 samples/);
  });

  it('formatReport prints the table', () => {
    const text = formatReport(computeMetrics({ yTrue, yPred, classes }));
    expect(text).toContain('accuracy 0.6000');
    expect(text).toContain('macro F1 0.5738');
    expect(text).toMatch(/pit\s+0\.750\s+0\.750\s+0\.750\s+4/);
  });
});

describe('rocAuc (Mann-Whitney with ties)', () => {
  it('hand-computed value with ties', () => {
    // positives 0.35, 0.8, 0.4; negatives 0.1, 0.4, 0.4.
    // pairs won: 0.35 -> 1; 0.8 -> 3; 0.4 -> 1 + two ties * 0.5 = 2. AUC = 6/9.
    expect(rocAuc([0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.4, 0.4])).toBeCloseTo(2 / 3, 12);
  });
  it('perfect, inverted, all tied, one class', () => {
    expect(rocAuc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])).toBe(1);
    expect(rocAuc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4])).toBe(0);
    expect(rocAuc([1, 0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5, 0.5])).toBe(0.5);
    expect(rocAuc([1, 1], [0.5, 0.6])).toBeNaN();
    expect(() => rocAuc([0, 1], [NaN, 1])).toThrow(/NaN/);
  });
  it('agrees with brute-force pair counting on random data with many ties', () => {
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    const y: number[] = [];
    const s: number[] = [];
    for (let i = 0; i < 300; i++) {
      y.push(rand() < 0.4 ? 1 : 0);
      s.push(Math.floor(rand() * 10) / 10 + (y[i] ? 0.15 : 0));
    }
    let num = 0;
    let den = 0;
    for (let i = 0; i < 300; i++) {
      if (y[i] !== 1) continue;
      for (let j = 0; j < 300; j++) {
        if (y[j] !== 0) continue;
        den++;
        num += s[i] > s[j] ? 1 : s[i] === s[j] ? 0.5 : 0;
      }
    }
    expect(rocAuc(y, s)).toBeCloseTo(num / den, 12);
  });
});

describe('plots', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(tmpdir(), 'wgsl-nn-plots-'));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  const isPng = (b: Buffer): boolean => b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));

  it('loss curves: a valid PNG of the requested size with the series drawn', async () => {
    const file = path.join(tmp, 'sub', 'loss.png');
    const train = Array.from({ length: 20 }, (_, i) => 2 * Math.exp(-i / 5) + 0.1);
    const val = train.map((v, i) => v + 0.1 + (i === 7 ? NaN : 0));
    const size = await writeCurvesPng(file, [{ name: 'train', values: train }, { name: 'validation', values: val }], { title: 'Loss', yLabel: 'cross-entropy' });
    expect(size).toEqual({ width: 800, height: 480 });
    const buf = await readFile(file);
    expect(isPng(buf)).toBe(true);
    const meta = await sharp(buf).metadata();
    expect([meta.width, meta.height]).toEqual([800, 480]);
    // Some pixels carry the first series colour (#1f77b4) and the second (#ff7f0e).
    const { data, info } = await sharp(buf).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    let blue = 0;
    let orange = 0;
    for (let i = 0; i < data.length; i += info.channels) {
      if (Math.abs(data[i] - 0x1f) < 12 && Math.abs(data[i + 1] - 0x77) < 12 && Math.abs(data[i + 2] - 0xb4) < 12) blue++;
      if (Math.abs(data[i] - 0xff) < 12 && Math.abs(data[i + 1] - 0x7f) < 12 && Math.abs(data[i + 2] - 0x0e) < 12) orange++;
    }
    expect(blue).toBeGreaterThan(500);
    expect(orange).toBeGreaterThan(500);
  });

  it('accuracy curves with a fixed range and custom size; a single epoch works', async () => {
    const file = path.join(tmp, 'acc.png');
    const size = await writeCurvesPng(file, [{ name: 'val', values: [0.5] }], { title: 'Accuracy', yLabel: 'accuracy', yMin: 0, yMax: 1, width: 400, height: 300 });
    expect(size).toEqual({ width: 400, height: 300 });
    const meta = await sharp(file).metadata();
    expect([meta.width, meta.height, meta.format]).toEqual([400, 300, 'png']);
    const { svg } = curvesSvg([{ name: 'a<b>&"c"', values: [1, 2] }], { title: 'T & <x>', yLabel: 'y' });
    expect(svg).toContain('a&lt;b&gt;&amp;&quot;c&quot;');
    expect(svg).toContain('T &amp; &lt;x&gt;');
  });

  it('confusion heatmap: valid PNG, size from the class count, names and counts in the SVG', async () => {
    const file = path.join(tmp, 'cm.png');
    const cm = [
      [50, 2, 0],
      [3, 40, 7],
      [0, 1, 45],
    ];
    const classes = ['crazing', 'rolled-in_scale', 'scratches'];
    const size = await writeConfusionPng(file, cm, classes);
    const meta = await sharp(file).metadata();
    expect([meta.width, meta.height]).toEqual([size.width, size.height]);
    const { svg, width } = confusionSvg(cm, classes);
    expect(width).toBe(size.width);
    for (const c of classes) expect(svg).toContain(`>${c}</text>`);
    expect(svg).toContain('>40</text>');
    expect(svg).toContain('Confusion matrix (n = 148)');
    // The diagonal cell of row 0 (50 of 52) is dark, the empty cell (0) is near white.
    const { svg: s2 } = confusionSvg([[1, 0], [0, 1]], ['a', 'b']);
    expect(s2).toContain('fill="rgb(8,48,107)"');
    expect(s2).toContain('fill="rgb(247,251,255)"');
    expect(() => confusionSvg([[1, 2]], ['a', 'b'])).toThrow(/2x2/);
  });

  it('niceTicks and escapeXml', () => {
    expect(niceTicks(0, 1, 5)).toMatchObject({ lo: 0, hi: 1, step: 0.2 });
    expect(niceTicks(0.13, 2.31, 6).ticks).toEqual([0, 0.5, 1, 1.5, 2, 2.5]);
    expect(niceTicks(3, 3).ticks.length).toBeGreaterThan(1);
    expect(escapeXml(`<a href="x">&'`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
  });
});
