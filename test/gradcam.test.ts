// Grad-CAM (src/cnn/gradcam.ts) on tiny seed-architecture models: the activation gradient from the
// autograd against central finite differences of an independent float64 re-implementation of the layers
// after the explained activation; the map against the Grad-CAM formula applied to those float64
// gradients; the cell geometry and the bilinear upsampling's alignment.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import { DefectClassifier, type ModelConfig } from '../src/cnn/model.js';
import { camFromGradients, cellGeometry, gradCam, gradCamLayer, upsampleCam, type GradCamResult } from '../src/cnn/gradcam.js';
import { manualSeed } from '../src/nn/seed.js';
import { expectClose, testEngine } from './helpers.js';
import { Rng } from '../src/util/rng.js';

let engine: Engine;
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => engine.destroy());

/**
 * A tiny seed CNN at input 34 (conv3 output 5x5: the max-pool drops its last row and column) with
 * conv3's bias raised so the explained activation (its ReLU output) has no zeros: no max-pool ties
 * and no ReLU kinks for finite differences to straddle.
 */
async function tinyModel(task: ModelConfig['task'], classes: string[]): Promise<DefectClassifier> {
  manualSeed(5);
  const m = new DefectClassifier({ task, classes, inputSize: 34, channels: [3, 4, 5], hidden: 7, inputMean: 0.5, inputStd: 0.25 }, engine);
  const state = await m.net.stateDict();
  (state['6.bias'].data as Float32Array).fill(2);
  m.net.loadStateDict(state);
  m.eval();
  return m;
}

function image(seed: number, s = 34): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: s * s }, () => r.uniform(0.05, 0.95));
}

/**
 * The explained logit as a float64 function of the activation A [C,h,w]: MaxPool2d(2) (floor) ->
 * Flatten -> Linear -> ReLU -> (Dropout: eval) -> Linear -> logit[k] (sign -1: the binary 'good' class).
 */
function tailLogit(state: Awaited<ReturnType<DefectClassifier['net']['stateDict']>>, shape: number[], k: number, sign = 1) {
  const [, c, h, w] = shape;
  const ph = Math.floor(h / 2);
  const pw = Math.floor(w / 2);
  const w1 = state['10.weight'].data as Float32Array;
  const b1 = state['10.bias'].data as Float32Array;
  const w2 = state['13.weight'].data as Float32Array;
  const b2 = state['13.bias'].data as Float32Array;
  const hidden = b1.length;
  const flat = c * ph * pw;
  return (a: Float64Array): number => {
    const p = new Float64Array(flat);
    for (let ch = 0; ch < c; ch++)
      for (let i = 0; i < ph; i++)
        for (let j = 0; j < pw; j++) {
          let m = -Infinity;
          for (let di = 0; di < 2; di++) for (let dj = 0; dj < 2; dj++) m = Math.max(m, a[ch * h * w + (2 * i + di) * w + 2 * j + dj]);
          p[ch * ph * pw + i * pw + j] = m;
        }
    let out = b2[k];
    for (let u = 0; u < hidden; u++) {
      let z = b1[u];
      for (let f = 0; f < flat; f++) z += w1[u * flat + f] * p[f];
      out += w2[k * hidden + u] * Math.max(z, 0);
    }
    return sign * out;
  };
}

/** d f / d a by central differences (float64, step 1e-6). */
function finiteDifferences(f: (a: Float64Array) => number, a0: ArrayLike<number>): Float64Array {
  const a = Float64Array.from(a0);
  const g = new Float64Array(a.length);
  const h = 1e-6;
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    a[i] = v + h;
    const up = f(a);
    a[i] = v - h;
    const down = f(a);
    a[i] = v;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

/** Grad-CAM's map from given gradients, written out from the paper's formula (float64). */
function referenceCam(a: ArrayLike<number>, g: ArrayLike<number>, c: number, area: number): Float64Array {
  const cam = new Float64Array(area);
  for (let ch = 0; ch < c; ch++) {
    let mean = 0;
    for (let i = 0; i < area; i++) mean += g[ch * area + i] / area;
    for (let i = 0; i < area; i++) cam[i] += mean * a[ch * area + i];
  }
  const max = Math.max(...cam.map((v) => Math.max(v, 0)));
  return cam.map((v) => (max > 0 ? Math.max(v, 0) / max : 0));
}

async function checkAgainstFloat64(model: DefectClassifier, r: GradCamResult, k: number, sign: number): Promise<void> {
  const state = await model.net.stateDict();
  const f = tailLogit(state, r.shape, k, sign);
  // The forward pass agrees with the float64 tail at the read-back activation.
  expect(Math.abs(f(Float64Array.from(r.activations)) - sign * r.logits[k])).toBeLessThan(1e-4);
  const fd = finiteDifferences(f, r.activations);
  expect(Math.max(...fd.map(Math.abs)), 'the gradient is not trivially zero').toBeGreaterThan(1e-3);
  // float32 GPU backward vs float64 finite differences: max |error| <= 1e-4 * max |gradient|.
  expectClose(r.gradients, fd, 1e-4, 'dlogit/dA');
  const [, c, h, w] = r.shape;
  // The unused last row and column of the 5x5 activation (floor-mode pooling) get exactly zero gradient.
  for (let ch = 0; ch < c; ch++) for (let j = 0; j < w; j++) expect(r.gradients[ch * h * w + (h - 1) * w + j]).toBe(0);
  expectClose(r.cam, referenceCam(r.activations, fd, c, h * w), 1e-3, 'cam', 1e-4);
  for (const p of model.parameters()) expect(p.grad, 'no weight gradients are computed or left behind').toBeNull();
}

describe('Grad-CAM gradients and map', () => {
  it('binary model: the defect logit, vs float64 finite differences', async () => {
    const model = await tinyModel('binary', ['good', 'defect']);
    expect(gradCamLayer(model)).toBe(7); // ReLU after the third conv, before its max-pool
    const r = await gradCam(model, image(1));
    expect(r.classIndex).toBe(1);
    expect(r.shape).toEqual([1, 5, 5, 5]);
    expect(r.probabilities[0]).toBeCloseTo(1 / (1 + Math.exp(-r.logits[0])), 6);
    await checkAgainstFloat64(model, r, 0, 1);
    // Explaining 'good' back-propagates the negated defect logit.
    const good = await gradCam(model, image(1), { classIndex: 0 });
    expectClose(good.gradients, r.gradients.map((v) => -v), 1e-6, 'good = -defect');
    model.dispose();
  });

  it('multiclass model: the predicted class by default, or a chosen one', async () => {
    const model = await tinyModel('multiclass', ['a', 'b', 'c']);
    const img = image(2);
    const r = await gradCam(model, img);
    const predicted = [0, 1, 2].reduce((best, j) => (r.logits[j] > r.logits[best] ? j : best), 0);
    expect(r.classIndex).toBe(predicted);
    await checkAgainstFloat64(model, r, predicted, 1);
    const other = (predicted + 1) % 3;
    const r2 = await gradCam(model, img, { classIndex: other });
    expect(r2.classIndex).toBe(other);
    await checkAgainstFloat64(model, r2, other, 1);
    const sum = r.probabilities.reduce((a, b) => a + b, 0);
    expect(sum).toBeCloseTo(1, 5);
    model.dispose();
  });

  it('camFromGradients: all-negative evidence gives an all-zero map, not NaN', () => {
    const { cam, weights } = camFromGradients({ shape: [1, 2, 1, 3], activations: Float32Array.of(1, 2, 3, 1, 1, 1), gradients: Float32Array.of(-1, -1, -1, 0, 0, 0) });
    expect(Array.from(weights)).toEqual([-1, 0]);
    expect(Array.from(cam)).toEqual([0, 0, 0]);
  });

  it('rejects a wrong image size, a bad class and a non-spatial layer', async () => {
    const model = await tinyModel('binary', ['good', 'defect']);
    await expect(gradCam(model, new Float32Array(10))).rejects.toThrow(/one 34x34 image \(1156 pixels\), got 10/);
    await expect(gradCam(model, image(1), { classIndex: 2 })).rejects.toThrow(/class index must be in 0\.\.1, got 2/);
    await expect(gradCam(model, image(1), { layer: 9 })).rejects.toThrow(/spatial layer index in 0\.\.8, got 9/);
    model.dispose();
  });
});

describe('geometry and upsampling', () => {
  it('the seed architecture at 128 px: conv3 cells on input pixels 4 i + 8.5, pool3 cells on 8 i + 10.5', () => {
    manualSeed(1);
    const m = new DefectClassifier({ task: 'binary', classes: ['good', 'defect'], inputSize: 128, channels: [2, 2, 2], hidden: 2 }, engine);
    expect(cellGeometry(m, 7)).toEqual({ scale: 4, offset: 8.5 });
    expect(cellGeometry(m, 8)).toEqual({ scale: 8, offset: 10.5 });
    m.dispose();
  });

  /** A 28x28 map with one hot cell at (row 10, column 5), upsampled; the arg-max pixels. */
  function peak(target: Parameters<typeof upsampleCam>[1]): { xs: number[]; ys: number[]; map: Float32Array } {
    const cam = new Float32Array(28 * 28);
    cam[10 * 28 + 5] = 1;
    const map = upsampleCam({ cam, camWidth: 28, camHeight: 28, geometry: { scale: 4, offset: 8.5 } }, target);
    const max = Math.max(...map);
    const xs = new Set<number>();
    const ys = new Set<number>();
    map.forEach((v, i) => {
      if (v === max) {
        xs.add(i % target.width);
        ys.add(Math.floor(i / target.width));
      }
    });
    return { xs: [...xs].sort((a, b) => a - b), ys: [...ys].sort((a, b) => a - b), map };
  }

  it('receptive-field alignment puts a cell at its receptive-field centre; stretch spreads the cells evenly', () => {
    const rf = peak({ width: 128, height: 128, inputSize: 128, fit: 'fill' });
    expect(rf.xs).toEqual([28, 29]); // 4 * 5 + 8.5
    expect(rf.ys).toEqual([48, 49]); // 4 * 10 + 8.5
    expect(rf.map.length).toBe(128 * 128);
    const st = peak({ width: 128, height: 128, inputSize: 128, fit: 'fill', alignment: 'stretch' });
    expect(st.xs).toEqual([25]); // (5 + 0.5) * 128 / 28 - 0.5 = 24.64: pixel 25 is 0.36 away, 24 0.64
    expect(st.ys).toEqual([47, 48]); // (10 + 0.5) * 128 / 28 - 0.5 = 47.5, halfway
  });

  it('maps through the resize to the image size (fill stretches each axis; cover crops the centre)', () => {
    const fill = peak({ width: 200, height: 64, inputSize: 128, fit: 'fill' });
    expect(fill.map.length).toBe(200 * 64);
    expect(fill.xs).toEqual([45]); // input 28.5 -> image (28.5 + 0.5) * 200 / 128 - 0.5 = 44.8
    expect(fill.ys).toEqual([24]); // input 48.5 -> image (48.5 + 0.5) * 64 / 128 - 0.5 = 24
    const cover = peak({ width: 256, height: 128, inputSize: 128, fit: 'cover' }); // scale 1, 64 px cropped left
    expect(cover.xs).toEqual([92, 93]);
    expect(cover.ys).toEqual([48, 49]);
    expect([...fill.map, ...cover.map].every((v) => v >= 0 && v <= 1)).toBe(true);
  });
});
