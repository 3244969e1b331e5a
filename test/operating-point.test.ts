// Decision thresholds and heatmaps end to end on a tiny good/defect model trained for one epoch on
// synthetic surfaces: the threshold chosen on validation and stored by training, used by Inspector,
// recomputed by calibrateModelDir; eval's operating-point fields; Grad-CAM heatmaps through Inspector
// and `inspect --heatmap` (the CLI is run through tsx).
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';
import { Engine } from '../src/gpu/engine.js';
import { Inspector } from '../src/cnn/inspector.js';
import { trainClassifier } from '../src/cnn/train.js';
import { evaluateModel } from '../src/cnn/evaluate.js';
import { calibrateModelDir, chooseThreshold, OperatingPointError } from '../src/cnn/calibration.js';
import { ModelFormatError, readModelMetadata } from '../src/cnn/model-dir.js';
import { generateSynthetic, syntheticSample } from '../src/data/synthetic.js';
import { decodeImage, floatToU8, writeGrayPng } from '../src/data/images.js';
import { flipImages } from '../src/cnn/model.js';
import { startServer } from '../src/serve/server.js';
import { Rng } from '../src/util/rng.js';

const cli = (args: string[]) => runCli(args);

let dir: string;
let data: string;
let model: string;
let engine: Engine;
/** A non-square grayscale PNG (37x23) of a synthetic scratch. */
let oddPng: Buffer;

/** Model copy `name` with model.json edited by `edit`. */
function copyModel(name: string, edit: (meta: Record<string, any>) => void): string {
  const out = join(dir, name);
  cpSync(model, out, { recursive: true });
  const meta = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
  edit(meta);
  writeFileSync(join(out, 'model.json'), JSON.stringify(meta));
  return out;
}

/** The recorded split's images of a model (paths under `data`) with labels 0 good / 1 defect. */
function splitImages(split: 'val' | 'test'): { paths: string[]; labels: number[] } {
  const files: string[] = (readModelMetadata(model).split as { files: Record<string, string[]> }).files[split];
  return { paths: files.map((f) => join(data, f)), labels: files.map((f) => (f.startsWith('good/') ? 0 : 1)) };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-op-'));
  data = join(dir, 'data');
  model = join(dir, 'model');
  engine = await Engine.create();
  // good (the clean surfaces) vs defect (two defect folders): 20 images each.
  await generateSynthetic({ outDir: data, perClass: 20, size: 32, seed: 3 });
  renameSync(join(data, 'clean'), join(data, 'good'));
  for (const f of ['patch', 'scratch', 'spot']) rmSync(join(data, f), { recursive: true });
  await trainClassifier({ data, task: 'binary', out: model, inputSize: 24, epochs: 1, batchSize: 8, seed: 1, channels: [4, 8, 8], engine });
  const u8 = floatToU8(syntheticSample('scratch', 64, new Rng(4)));
  oddPng = await sharp(Buffer.from(u8.buffer, u8.byteOffset, u8.length), { raw: { width: 64, height: 64, channels: 1 } })
    .resize(37, 23, { fit: 'fill' })
    .png()
    .toBuffer();
});
afterAll(() => {
  engine.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('decision threshold', () => {
  it('training stores the threshold chosen on the validation split (default far=0.05)', async () => {
    const meta = readModelMetadata(model);
    const d = meta.decision!;
    expect(d).toMatchObject({ operatingPoint: 'far=0.05', chosenOn: 'validation', rule: 'defect when P(defect) >= threshold', source: 'train' });
    const counts = (meta.split as { counts: Record<string, Record<string, number>> }).counts;
    expect(d.validation).toMatchObject({ good: counts.val.good, defect: counts.val.defect });
    expect(d.test).toMatchObject({ good: counts.test.good, defect: counts.test.defect });
    // The same choice from the validation images' scores as the Inspector computes them.
    const val = splitImages('val');
    const insp = await Inspector.load(model, { engine });
    const scores = (await insp.inspectBatch(val.paths)).map((r) => r.scores.defect);
    insp.dispose();
    const again = chooseThreshold(scores, val.labels, { far: 0.05 });
    expect(d.threshold).toBeCloseTo(again.threshold, 5);
    expect(d.validation.falseAlarms).toBe(again.falseAlarms);
    // metrics.test is at the stored threshold.
    const t = d.test!;
    expect(meta.metrics!.test!.confusion).toEqual([
      [t.good - t.falseAlarms, t.falseAlarms],
      [t.missed, t.defect - t.missed],
    ]);
  });

  it('Inspector decides with the stored threshold; 0.5 when none is stored; a bad one is a format error', async () => {
    const imgs = [...splitImages('val').paths, ...splitImages('test').paths];
    const probe = await Inspector.load(model, { engine });
    const scores = (await probe.inspectBatch(imgs)).map((r) => r.scores.defect);
    probe.dispose();
    const median = [...scores].sort((a, b) => a - b)[Math.floor(scores.length / 2)];
    const shifted = copyModel('shifted', (m) => (m.decision.threshold = median));
    const insp = await Inspector.load(shifted, { engine });
    expect(insp.threshold).toBe(median);
    const results = await insp.inspectBatch(imgs);
    results.forEach((r, i) => {
      expect(r.label).toBe(scores[i] >= median ? 'defect' : 'good');
      expect(r.score).toBeCloseTo(scores[i] >= median ? scores[i] : 1 - scores[i], 6);
    });
    // The median splits the scores differently from 0.5, so the stored threshold mattered.
    expect(results.some((r, i) => r.label !== (scores[i] >= 0.5 ? 'defect' : 'good'))).toBe(true);
    insp.dispose();

    const old = copyModel('no-threshold', (m) => delete m.decision);
    const insp2 = await Inspector.load(old, { engine });
    expect(insp2.threshold).toBe(0.5);
    (await insp2.inspectBatch(imgs)).forEach((r, i) => expect(r.label).toBe(scores[i] >= 0.5 ? 'defect' : 'good'));
    insp2.dispose();

    const bad = copyModel('bad-threshold', (m) => (m.decision.threshold = 1.5));
    await expect(Inspector.load(bad, { engine })).rejects.toThrow(ModelFormatError);
    await expect(Inspector.load(bad, { engine })).rejects.toThrow(/decision\.threshold must be a number in \[0, 1\], got 1\.5/);
  });

  it('calibrateModelDir recomputes the threshold on the recorded validation split and rewrites only decision and metrics', async () => {
    const target = copyModel('calibrated', () => {});
    const before = JSON.parse(readFileSync(join(target, 'model.json'), 'utf8'));
    const r = await calibrateModelDir(target, data, { recall: 1 }, { engine, command: 'test' });
    expect(r.previousThreshold).toBe(before.decision.threshold);
    expect(r.decision).toMatchObject({ operatingPoint: 'recall=1', source: 'test' });
    expect(r.decision.validation.defectRecall).toBe(1);
    const after = JSON.parse(readFileSync(join(target, 'model.json'), 'utf8'));
    expect(after.decision.threshold).toBe(r.decision.threshold);
    for (const k of Object.keys(before)) if (k !== 'decision' && k !== 'metrics') expect(after[k], k).toEqual(before[k]);
    expect(after.metrics.test.confusion[1][0]).toBe(r.decision.test!.missed);
    expect(readdirSync(target).filter((f) => f.endsWith('.tmp'))).toEqual([]); // written atomically, no leftovers
    const insp = await Inspector.load(target, { engine });
    expect(insp.threshold).toBe(r.decision.threshold);
    insp.dispose();
  });

  it('calibrateModelDir --test-time-flips: scores are the four-flip means, and the setting is stored with the threshold', async () => {
    const target = copyModel('flips', () => {});
    const r = await calibrateModelDir(target, data, { far: 0.1 }, { engine, command: 'test', testTimeFlips: true });
    const after = readModelMetadata(target);
    expect(after.architecture.testTimeFlips).toBe(true);
    expect(after.decision!.threshold).toBe(r.decision.threshold);
    // The flipped inspector's score is the mean of the plain inspector's scores of the four flipped images.
    const plain = await Inspector.load(model, { engine });
    const flipped = await Inspector.load(target, { engine });
    const { paths } = splitImages('val');
    const s = plain.meta.inputSize;
    let changed = 0;
    for (const path of paths.slice(0, 4)) {
      const px = await decodeImage(path, { size: s });
      const views = [[false, false], [true, false], [false, true], [true, true]].map(([h, v]) => flipImages(px, 1, s, h, v));
      // Each view as an 8-bit PNG (exact: the pixels came from an 8-bit image).
      const viewScores = await Promise.all(
        views.map(async (v, k) => {
          const file = join(dir, `flip-view-${k}.png`);
          await writeGrayPng(file, v, s, s);
          return (await plain.inspect(file)).scores.defect;
        }),
      );
      const expected = viewScores.reduce((a, b) => a + b, 0) / 4;
      changed = Math.max(changed, Math.abs(expected - viewScores[0]));
      expect((await flipped.inspect(path)).scores.defect).toBeCloseTo(expected, 5);
      expect((await flipped.inspect(path, { heatmap: true })).scores.defect).toBeCloseTo(expected, 5);
    }
    expect(changed).toBeGreaterThan(1e-4); // the flips change the score: the mean is not the plain score by accident
    plain.dispose();
    flipped.dispose();
    // Switching it off again restores the plain scores.
    await calibrateModelDir(target, data, { far: 0.1 }, { engine, command: 'test', testTimeFlips: false });
    expect(readModelMetadata(target).architecture.testTimeFlips).toBe(false);
  });

  it('calibrateModelDir refuses data without the recorded images, and multiclass-only operating points', async () => {
    const partial = join(dir, 'partial');
    for (const f of ['good', 'crack']) {
      mkdirSync(join(partial, f), { recursive: true });
      const first = readdirSync(join(data, f)).sort()[0];
      cpSync(join(data, f, first), join(partial, f, first));
    }
    await expect(calibrateModelDir(model, partial, { far: 0.1 }, { engine })).rejects.toThrow(OperatingPointError);
    await expect(calibrateModelDir(model, partial, { far: 0.1 }, { engine })).rejects.toThrow(/image\(s\) of the recorded validation\/test split are not in/);
    await expect(calibrateModelDir(model, data, { far: 1 }, { engine })).rejects.toThrow(/false-alarm rate must be a fraction in \[0, 1\)/);
    await expect(trainClassifier({ data, task: 'multiclass', out: join(dir, 'mc'), operatingPoint: { far: 0.1 }, engine })).rejects.toThrow(/operating point .* is for binary models/);
  });
});

describe('eval operating points', () => {
  it('reports the threshold used, recall/good recall at it, and recall at 1/3/5 % false alarms chosen on the evaluated data', async () => {
    const r = await evaluateModel(model, data, { engine });
    const op = r.operatingPoints!;
    const meta = readModelMetadata(model);
    expect(op).toMatchObject({ threshold: meta.decision!.threshold, thresholdSource: 'model', operatingPoint: 'far=0.05' });
    expect(op.atThreshold.goodRecall).toBeCloseTo(r.perClass.good.recall, 12);
    expect(op.atThreshold.defectRecall).toBeCloseTo(r.perClass.defect.recall, 12);
    expect(op.atFalseAlarmRates.map((o) => o.targetFalseAlarmRate)).toEqual([0.01, 0.03, 0.05]);
    for (const o of op.atFalseAlarmRates) {
      expect(o.thresholdChosenOn).toBe('evaluated data');
      expect(o.rates!.falseAlarmRate).toBeLessThanOrEqual(o.targetFalseAlarmRate);
    }
    expect(typeof r.rocAuc).toBe('number');
  });

  it('`eval --json` prints the same fields; `inspect --heatmap` writes a PNG of the image size', async () => {
    const ev = await cli(['eval', '--model', model, '--data', data, '--json']);
    expect(ev.code, ev.stderr).toBe(0);
    const j = JSON.parse(ev.stdout);
    expect(j.operatingPoints.thresholdSource).toBe('model');
    expect(j.operatingPoints.atFalseAlarmRates).toHaveLength(3);
    expect(j.operatingPoints.atThreshold).toHaveProperty('defectRecall');
    expect(j.rocAuc).toBeGreaterThanOrEqual(0);

    const img = join(dir, 'odd.png');
    writeFileSync(img, oddPng);
    const out = join(dir, 'heatmaps');
    const r = await cli(['inspect', '--model', model, '--heatmap', out, '--json', img]);
    expect(r.code, r.stderr).toBe(0);
    const line = JSON.parse(r.stdout.trim());
    expect(line.heatmap).toBe(join(out, 'odd.heatmap.png'));
    expect(existsSync(line.heatmap)).toBe(true);
    const png = await sharp(line.heatmap).metadata();
    expect(png).toMatchObject({ format: 'png', width: 37, height: 23, channels: 3 });
  });
});

describe('flipImages', () => {
  it('mirrors each of n images left-right, top-bottom or both (checked against index arithmetic)', () => {
    const n = 2;
    const s = 3;
    const px = Float32Array.from({ length: n * s * s }, (_, i) => i + 1);
    const at = (img: number, y: number, x: number) => img * s * s + y * s + x;
    for (const [h, v] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      const out = flipImages(px, n, s, h, v);
      for (let img = 0; img < n; img++)
        for (let y = 0; y < s; y++) for (let x = 0; x < s; x++) expect(out[at(img, y, x)]).toBe(px[at(img, v ? s - 1 - y : y, h ? s - 1 - x : x)]);
    }
    expect(Array.from(flipImages(px, n, s, true, true).subarray(0, 9))).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1]);
  });
});

describe('Inspector heatmaps', () => {
  it('inspect(img, { heatmap: true }): the same result plus a finite [0, 1] map at the image size', async () => {
    const insp = await Inspector.load(model, { engine });
    const plain = await insp.inspect(oddPng);
    const withMap = await insp.inspect(oddPng, { heatmap: true });
    const { heatmap, ...rest } = withMap;
    expect(rest.label).toBe(plain.label);
    for (const c of insp.classes) expect(rest.scores[c]).toBeCloseTo(plain.scores[c], 6);
    expect(heatmap).toMatchObject({ width: 37, height: 23, class: 'defect' });
    expect(heatmap.data).toHaveLength(37 * 23);
    let max = 0;
    for (const v of heatmap.data) {
      expect(Number.isFinite(v) && v >= 0 && v <= 1).toBe(true);
      max = Math.max(max, v);
    }
    expect(max === 0 || max > 0.5).toBe(true); // normalised to its maximum (all zero without positive evidence)
    const good = await insp.inspect(oddPng, { heatmap: true, heatmapClass: 'good' });
    expect(good.heatmap.class).toBe('good');
    await expect(insp.inspect(oddPng, { heatmap: true, heatmapClass: 'nope' })).rejects.toThrow(/heatmap class 'nope' is not a class of the model \(good, defect\)/);
    expect(insp.stats().queue.items).toBe(1); // heatmap calls ran outside the batch queue
    insp.dispose();
  });
});

describe('serve', () => {
  it("decides with the model's stored threshold by default, and returns the heatmap as a PNG with ?heatmap=1", async () => {
    const insp = await Inspector.load(copyModel('serve', (m) => (m.decision.threshold = 0.25)), { engine });
    const server = await startServer({ inspector: insp, port: 0 });
    try {
      const r = await (await fetch(server.url + '/inspect', { method: 'POST', body: oddPng })).json();
      expect(r.decision).toBe(r.scores.defect >= 0.25 ? 'reject' : 'accept');
      expect(r.label).toBe(r.decision === 'reject' ? 'defect' : 'good');
      const h = await (await fetch(server.url + '/inspect?heatmap=1', { method: 'POST', body: oddPng })).json();
      expect(h.scores.defect).toBeCloseTo(r.scores.defect, 6);
      expect(h.heatmap).toMatchObject({ width: 37, height: 23, class: 'defect' });
      const png = await sharp(Buffer.from(h.heatmap.png, 'base64')).metadata();
      expect(png).toMatchObject({ format: 'png', width: 37, height: 23, channels: 1 });
      const bad = await fetch(server.url + '/inspect?heatmap=yes', { method: 'POST', body: oddPng });
      expect(bad.status).toBe(400);
      expect((await bad.json()).error).toMatch(/heatmap must be 1 or 0, got 'yes'/);
    } finally {
      await server.close();
      insp.dispose();
    }
  });
});
