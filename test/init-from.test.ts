// Transfer learning (`wgsl-nn train --init-from`): the layers of a trained classifier whose weights
// match by name and shape are copied whole, the rest keep their random initialisation.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../src/gpu/engine.js';
import { DefectClassifier } from '../src/cnn/model.js';
import { initFromModelDir, saveModelDir } from '../src/cnn/model-dir.js';
import { manualSeed } from '../src/nn/seed.js';
import { testEngine } from './helpers.js';

let engine: Engine;
const dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-init-from-'));
beforeAll(async () => {
  engine = await testEngine();
});
afterAll(() => {
  engine.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const weights = async (m: DefectClassifier) => m.net.stateDict();

describe('initFromModelDir', () => {
  it('copies the convolutions of a multiclass model at another input size into a binary model; the dense layers stay random', async () => {
    manualSeed(11);
    const source = new DefectClassifier({ task: 'multiclass', classes: ['a', 'b', 'c'], inputSize: 30, channels: [3, 4, 5], hidden: 6, normalize: 'image' }, engine);
    await saveModelDir(join(dir, 'source'), source, { preprocessing: { grayscale: true, resize: 'fill', scale: 1 / 255, offset: 0 } });
    manualSeed(12);
    const target = new DefectClassifier({ task: 'binary', classes: ['good', 'defect'], inputSize: 46, channels: [3, 4, 5], hidden: 6, normalize: 'image' }, engine);
    const before = await weights(target);
    const from = await weights(source);

    const { copied, skipped } = initFromModelDir(target, join(dir, 'source'));
    expect(copied).toEqual(['0.weight', '0.bias', '3.weight', '3.bias', '6.weight', '6.bias']);
    // 10.bias has the same shape [6] in both (hidden 6) but its weight does not: the layer is not copied.
    expect(skipped).toEqual(['10.weight', '10.bias', '13.weight', '13.bias']);
    const after = await weights(target);
    for (const n of copied) expect(Array.from(after[n].data as Float32Array)).toEqual(Array.from(from[n].data as Float32Array));
    for (const n of skipped) expect(Array.from(after[n].data as Float32Array)).toEqual(Array.from(before[n].data as Float32Array));
    // The weights differ before the copy (two seeds), so the equality above is the copy's doing.
    expect(Array.from(before['3.weight'].data as Float32Array)).not.toEqual(Array.from(from['3.weight'].data as Float32Array));
    source.dispose();
    target.dispose();
  });

  it('refuses a model none of whose layers match', () => {
    const target = new DefectClassifier({ task: 'binary', classes: ['good', 'defect'], inputSize: 30, channels: [2, 2, 2], hidden: 3 }, engine);
    expect(() => initFromModelDir(target, join(dir, 'source'))).toThrow(/no layer's weights match this model's names and shapes/);
    expect(() => initFromModelDir(target, join(dir, 'missing'))).toThrow(/model directory not found|weights file not found/);
    target.dispose();
  });
});
