// The classifier end to end on tiny synthetic fixtures: train 1 epoch, eval and inspect through the
// CLI and through Inspector; bad inputs give clear errors (continue or stop as the flag says).
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers.js';
import { checkpointPartPath } from '../src/train/checkpoint.js';
import { Engine } from '../src/gpu/engine.js';
import { Inspector } from '../src/cnn/inspector.js';
import { trainClassifier, TrainingDivergedError } from '../src/cnn/train.js';
import { evaluateModel } from '../src/cnn/evaluate.js';
import { ImageDecodeError } from '../src/data/images.js';
import { ClassMismatchError, DatasetError } from '../src/data/dataset.js';
import { generateSynthetic } from '../src/data/synthetic.js';

const cli = (args: string[]) => runCli(args);

let dir: string;
let data: string;
let model: string;
let engine: Engine;
const classes = ['clean', 'crack', 'inclusion', 'patch', 'scratch', 'spot'];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-e2e-'));
  data = join(dir, 'data');
  model = join(dir, 'model');
  engine = await Engine.create();
  await generateSynthetic({ outDir: data, perClass: 8, size: 32, seed: 3 });
  await trainClassifier({ data, task: 'multiclass', out: model, inputSize: 24, epochs: 1, batchSize: 8, seed: 1, channels: [4, 8, 8], engine });
});
afterAll(() => {
  engine.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('train / eval / inspect', () => {
  it('training wrote the model directory, report and plots', () => {
    for (const f of ['model.safetensors', 'model.json', 'report.json', 'loss.png', 'accuracy.png', 'confusion.png', 'checkpoint/state.json'])
      expect(existsSync(join(model, f)), f).toBe(true);
    const meta = JSON.parse(readFileSync(join(model, 'model.json'), 'utf8'));
    expect(meta.classes).toEqual(classes);
    expect(meta.inputSize).toBe(24);
    expect(meta.split.seed).toBe(1);
    expect(meta.training.history).toHaveLength(1);
    expect(meta.metrics.test.count).toBeGreaterThan(0);
  });

  it('is deterministic for a seed', async () => {
    const again = join(dir, 'model2');
    await trainClassifier({ data, task: 'multiclass', out: again, inputSize: 24, epochs: 1, batchSize: 8, seed: 1, channels: [4, 8, 8], engine });
    expect(readFileSync(join(again, 'model.safetensors')).equals(readFileSync(join(model, 'model.safetensors')))).toBe(true);
  });

  it('resumes from a checkpoint to the same weights as an uninterrupted run', async () => {
    const a = join(dir, 'resume-a');
    const b = join(dir, 'resume-b');
    const common = { data, task: 'multiclass' as const, inputSize: 24, batchSize: 8, seed: 5, channels: [4, 8, 8] as [number, number, number], engine };
    await trainClassifier({ ...common, out: a, epochs: 2 });
    await trainClassifier({ ...common, out: b, epochs: 1 });
    await trainClassifier({ ...common, out: b, epochs: 2, resume: true });
    expect(readFileSync(checkpointPartPath(join(b, 'checkpoint'), 'model.safetensors')).equals(readFileSync(checkpointPartPath(join(a, 'checkpoint'), 'model.safetensors')))).toBe(true);
  });

  it('a NaN/infinite loss stops training with a clear error and leaves the last good checkpoint intact', async () => {
    const out = join(dir, 'diverge');
    const common = { data, task: 'multiclass' as const, out, inputSize: 24, batchSize: 8, seed: 9, channels: [4, 8, 8] as [number, number, number], engine };
    await trainClassifier({ ...common, epochs: 1 });
    const weights = readFileSync(checkpointPartPath(join(out, 'checkpoint'), 'model.safetensors'));
    const best = readFileSync(join(out, 'model.safetensors'));
    const err = await trainClassifier({ ...common, epochs: 3, resume: true, lr: 1e30 }).catch((e) => e);
    expect(err).toBeInstanceOf(TrainingDivergedError);
    expect(err.message).toMatch(/loss is (NaN|Infinity|-Infinity) at epoch 2/);
    expect(err.message).toMatch(/last good checkpoint is intact/);
    expect(JSON.parse(readFileSync(join(out, 'checkpoint', 'state.json'), 'utf8')).epoch).toBe(1);
    expect(readFileSync(checkpointPartPath(join(out, 'checkpoint'), 'model.safetensors')).equals(weights)).toBe(true);
    expect(readFileSync(join(out, 'model.safetensors')).equals(best)).toBe(true);
  });

  it('Inspector inspects paths and buffers, in batches, with scores summing to 1', async () => {
    const insp = await Inspector.load(model, { engine });
    const file = join(data, 'crack', readdirFirst(join(data, 'crack')));
    const r1 = await insp.inspect(file);
    const r2 = await insp.inspect(readFileSync(file));
    expect(r1).toEqual(r2);
    expect(classes).toContain(r1.label);
    expect(Object.values(r1.scores).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    expect(r1.score).toBe(Math.max(...Object.values(r1.scores)));
    const many = await insp.inspectBatch(Array(40).fill(file));
    expect(many).toHaveLength(40);
    expect(many[39]).toEqual(r1);
    insp.dispose();
  });

  it('Inspector keeps GPU memory flat over many inspections', async () => {
    const insp = await Inspector.load(model, { engine });
    const buf = readFileSync(join(data, 'spot', readdirFirst(join(data, 'spot'))));
    for (let i = 0; i < 20; i++) await insp.inspect(buf);
    const before = engine.memory().bytesAllocated;
    for (let i = 0; i < 100; i++) await insp.inspect(buf);
    expect(engine.memory().bytesAllocated).toBe(before);
    insp.dispose();
  });

  it('CLI eval --json prints accuracy, macroF1, confusion, classes, count', async () => {
    const r = await cli(['eval', '--model', model, '--data', data, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.classes).toEqual(classes);
    expect(j.count).toBe(48);
    expect(j.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(48);
    expect(j.accuracy).toBeGreaterThanOrEqual(0);
    expect(typeof j.macroF1).toBe('number');
  });

  it('CLI inspect labels images and reports a bad one without stopping', async () => {
    const bad = join(dir, 'bad.png');
    writeFileSync(bad, 'not a png at all');
    const good = join(data, 'patch', readdirFirst(join(data, 'patch')));
    const r = await cli(['inspect', '--model', model, '--json', good, bad]);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0].path).toBe(good);
    expect(classes).toContain(lines[0].label);
    expect(lines[1].error).toMatch(/not an image/);
    expect(r.code).toBe(2);
    const strict = await cli(['inspect', '--model', model, '--on-bad-image', 'fail', bad, good]);
    expect(strict.code).toBe(1);
    expect(strict.stderr).toMatch(/error: .*not an image/);
  });

  it('CLI train --help and a missing dataset give clear messages', async () => {
    const help = await cli(['train', '--help']);
    expect(help.stdout).toMatch(/--data <dir>/);
    const missing = await cli(['train', '--data', join(dir, 'nope'), '--out', join(dir, 'x')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/error: dataset root not found/);
  });
});

function readdirFirst(d: string): string {
  return readdirSync(d).sort()[0];
}

describe('bad data', () => {
  function copyData(name: string): string {
    const d = join(dir, name);
    for (const c of classes) {
      mkdirSync(join(d, c), { recursive: true });
      for (const f of readdirSync(join(data, c))) copyFileSync(join(data, c, f), join(d, c, f));
    }
    return d;
  }

  it('a corrupt PNG, an empty file and a non-image stop training with a clear error, or are skipped with --on-bad-image skip', async () => {
    const d = copyData('corrupt');
    const png = readFileSync(join(data, 'clean', readdirFirst(join(data, 'clean'))));
    writeFileSync(join(d, 'clean', 'truncated.png'), png.subarray(0, 60));
    writeFileSync(join(d, 'spot', 'empty.png'), Buffer.alloc(0));
    writeFileSync(join(d, 'crack', 'text.png'), 'hello');
    const opts = { data: d, task: 'multiclass' as const, out: join(dir, 'm-corrupt'), inputSize: 24, epochs: 1, batchSize: 8, channels: [4, 8, 8] as [number, number, number], engine };
    await expect(trainClassifier(opts)).rejects.toBeInstanceOf(ImageDecodeError);
    await expect(trainClassifier(opts)).rejects.toThrow(/truncated\.png|empty\.png|text\.png/);
    const warnings: string[] = [];
    const r = await trainClassifier({ ...opts, onBadImage: 'skip', log: (l) => warnings.push(l) });
    expect(r.history).toHaveLength(1);
    expect(warnings.filter((w) => /skipping/.test(w))).toHaveLength(3);
    const ev = await evaluateModel(model, d, { engine, onBadImage: 'skip' });
    expect(ev.skipped.map((s) => s.path.split('/').pop()).sort()).toEqual(['empty.png', 'text.png', 'truncated.png']);
    expect(ev.count).toBe(48);
    await expect(evaluateModel(model, d, { engine })).rejects.toBeInstanceOf(ImageDecodeError);
  });

  it('a class folder with no images is a clear error', async () => {
    const d = copyData('emptyfolder');
    mkdirSync(join(d, 'scratch2'));
    writeFileSync(join(d, 'scratch2', 'notes.txt'), 'x');
    await expect(trainClassifier({ data: d, task: 'multiclass', out: join(dir, 'm-e'), inputSize: 24, epochs: 1, engine })).rejects.toBeInstanceOf(DatasetError);
    await expect(trainClassifier({ data: d, task: 'multiclass', out: join(dir, 'm-e'), inputSize: 24, epochs: 1, engine })).rejects.toThrow(/scratch2/);
  });

  it('a model/data class mismatch is a clear error, or skipped with the flag', async () => {
    const d = copyData('mismatch');
    mkdirSync(join(d, 'rust'));
    copyFileSync(join(data, 'clean', readdirFirst(join(data, 'clean'))), join(d, 'rust', 'a.png'));
    await expect(evaluateModel(model, d, { engine })).rejects.toBeInstanceOf(ClassMismatchError);
    await expect(evaluateModel(model, d, { engine })).rejects.toThrow(/rust/);
    const r = await evaluateModel(model, d, { engine, skipUnknownClasses: true });
    expect(r.skippedFolders).toEqual(['rust']);
    const viaCli = await cli(['eval', '--model', model, '--data', d, '--json']);
    expect(viaCli.code).toBe(1);
    expect(viaCli.stderr).toMatch(/rust/);
  });
});

describe('input standardisation', () => {
  it("normalize 'image' gives each image zero mean and unit variance; 'dataset' uses the stored statistics", async () => {
    const { DefectClassifier } = await import('../src/cnn/model.js');
    const s = 24;
    const pixels = new Float32Array(2 * s * s).map((_, i) => (i < s * s ? 0.2 + 0.1 * Math.sin(i) : 0.7 + 0.3 * Math.cos(i)));
    for (const normalize of ['image', 'dataset'] as const) {
      const m = new DefectClassifier({ task: 'binary', classes: ['good', 'defect'], inputSize: s, channels: [2, 2, 2], inputMean: 0.5, inputStd: 0.25, normalize }, engine);
      const x = (await m.inputTensor(pixels, 2).toArray()) as Float32Array;
      for (let img = 0; img < 2; img++) {
        const part = x.subarray(img * s * s, (img + 1) * s * s);
        const mean = part.reduce((a, b) => a + b, 0) / part.length;
        const std = Math.sqrt(part.reduce((a, b) => a + (b - mean) ** 2, 0) / part.length);
        if (normalize === 'image') {
          expect(mean).toBeCloseTo(0, 5);
          expect(std).toBeCloseTo(1, 4);
        } else expect(part[0]).toBeCloseTo((pixels[img * s * s] - 0.5) / 0.25, 5);
      }
      m.dispose();
    }
  });
});

describe("padding 'same'", () => {
  it('gives every conv padding 1: logits equal the float64 CPU reference, and it survives save/load', async () => {
    const { DefectClassifier, featureSize } = await import('../src/cnn/model.js');
    const { saveModelDir, loadModelDir } = await import('../src/cnn/model-dir.js');
    const { conv2dRef } = await import('../src/kernels/reference/conv2d.js');
    const { maxPool2dRef } = await import('../src/kernels/reference/maxpool2d.js');
    const { linearForwardRef } = await import('../src/kernels/reference/dense.js');
    const s = 19; // odd sizes: pooling floors at every block (19 -> 9 -> 4 -> 2)
    expect(featureSize(s, 'same')).toBe(2);
    expect(featureSize(s, 'valid')).toBe(0);
    const ch: [number, number, number] = [3, 4, 5];
    const m = new DefectClassifier({ task: 'multiclass', classes: ['a', 'b', 'c'], inputSize: s, channels: ch, padding: 'same', inputMean: 0.4, inputStd: 0.3, hidden: 6 }, engine);
    m.eval();
    const n = 2;
    const pixels = new Float32Array(n * s * s).map((_, i) => 0.5 + 0.45 * Math.sin(0.37 * i + 0.11 * (i % 7)));
    const logits = (await m.logits(m.inputTensor(pixels, n)).toArray()) as Float32Array;

    // Reference: the same layers in float64 with the model's weights.
    const w = await Promise.all(m.parameters().map((p) => p.toArray() as Promise<Float32Array>));
    let x: ArrayLike<number> = Float64Array.from(pixels, (v) => (v - 0.4) / 0.3);
    let shape = [n, 1, s, s];
    for (let b = 0; b < 3; b++) {
      const wShape = [ch[b], shape[1], 3, 3];
      const y = conv2dRef(x, shape, w[2 * b], wShape, w[2 * b + 1], { stride: [1, 1], padding: [1, 1] }, 'relu');
      const pooled = maxPool2dRef(y, [n, ch[b], shape[2], shape[3]], { kernel: [2, 2], stride: [2, 2] });
      x = pooled.y;
      shape = pooled.shape;
    }
    const flat = shape[1] * shape[2] * shape[3];
    const hidden = linearForwardRef(x, w[6], w[7], n, flat, 6, 'relu');
    const ref = linearForwardRef(hidden, w[8], w[9], n, 6, 3);
    // float32 GPU vs float64 reference over 3 conv layers: 1e-4 relative to the largest logit.
    const scale = Math.max(...ref.map(Math.abs));
    for (let i = 0; i < ref.length; i++) expect(Math.abs(logits[i] - ref[i])).toBeLessThan(1e-4 * scale + 1e-5);

    const out = join(dir, 'padded-model');
    await saveModelDir(out, m, { preprocessing: { grayscale: true, resize: 'fill', scale: 1 / 255, offset: 0 } } as never);
    const loaded = loadModelDir(out, engine).model;
    expect(loaded.config.padding).toBe('same');
    loaded.eval();
    expect(Array.from((await loaded.logits(loaded.inputTensor(pixels, n)).toArray()) as Float32Array)).toEqual(Array.from(logits));
    loaded.dispose();
    m.dispose();
    expect(() => new DefectClassifier({ task: 'binary', classes: ['g', 'd'], inputSize: 32, padding: 'full' as never }, engine)).toThrow(/padding must be 'valid' or 'same'/);
  });
});
