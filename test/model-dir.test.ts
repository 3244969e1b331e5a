// The model-directory format shared by all models (src/model-dir.ts): several named weights files,
// model.json with its format, clear errors; the shipped classifier directories still read.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelFormatError, readModelJson, readModelWeights, writeModelDir } from '../src/model-dir.js';
import { MODEL_FORMAT, readModelMetadata } from '../src/cnn/model-dir.js';
import { readSafetensors } from '../src/nn/serialize.js';

const ROOT = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-modeldir-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const entry = (values: number[], shape: number[]) => ({ shape, dtype: 'F32' as const, data: Float32Array.from(values) });

describe('model directories', () => {
  it('hold several named weights files and model.json with the format first', () => {
    const out = join(dir, 'gan');
    const generator = { 'fc.weight': entry([0.5, -1.25, 3, 7.5, -0.125, 2], [3, 2]) };
    const discriminator = { 'fc.weight': entry([1.5, -2], [1, 2]), 'fc.bias': entry([0.25], [1]) };
    writeModelDir(out, 'wgsl-nn-gan/1', { generator, discriminator }, { imageSize: 32, classes: ['crack'] });
    expect(Object.keys(JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')))).toEqual(['format', 'imageSize', 'classes']);
    const meta = readModelJson<{ format: string; imageSize: number }>(out, 'wgsl-nn-gan/1');
    expect(meta.imageSize).toBe(32);
    expect(readModelWeights(out, 'generator')).toEqual(generator);
    expect(readModelWeights(out, 'discriminator')).toEqual(discriminator);
    expect(readSafetensors(join(out, 'generator.safetensors')).metadata.format).toBe('wgsl-nn-gan/1');
  });

  it('give clear errors: missing directory, missing model.json, corrupt JSON, another format, missing weights', () => {
    const out = join(dir, 'gan');
    expect(() => readModelJson(join(dir, 'nope'), MODEL_FORMAT)).toThrow(ModelFormatError);
    expect(() => readModelJson(join(dir, 'nope'), MODEL_FORMAT)).toThrow(/model directory not found/);
    mkdirSync(join(dir, 'empty'));
    expect(() => readModelJson(join(dir, 'empty'), MODEL_FORMAT)).toThrow(/not a model directory \(no model\.json\)/);
    expect(() => readModelMetadata(out)).toThrow(/this is a 'wgsl-nn-gan\/1' model directory; expected format wgsl-nn-classifier\/1/);
    mkdirSync(join(dir, 'bad'));
    writeFileSync(join(dir, 'bad', 'model.json'), '{"format": ');
    expect(() => readModelJson(join(dir, 'bad'), 'wgsl-nn-gan/1')).toThrow(/corrupt model\.json/);
    writeFileSync(join(dir, 'bad', 'model.json'), '{"format": "something/3"}');
    expect(() => readModelJson(join(dir, 'bad'), 'wgsl-nn-gan/1')).toThrow(/unknown format 'something\/3' \(expected wgsl-nn-gan\/1\)/);
    expect(() => readModelWeights(out, 'model')).toThrow(/weights file not found/);
    expect(() => readModelWeights(out, '../x')).toThrow(/weights name/);
  });

  it.each(['models/neu', 'models/magnetic-tile'])('the shipped %s still reads as a classifier directory', (d) => {
    const meta = readModelMetadata(join(ROOT, d));
    expect(meta.format).toBe(MODEL_FORMAT);
    expect(Object.keys(readModelWeights(join(ROOT, d)))).toContain('0.weight');
  });
});
