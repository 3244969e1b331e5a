// Weights in safetensors with PyTorch names: round trip, and fixtures written by PyTorch 1.13.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, load, manualSeed, nn, noGrad, readSafetensors, save, SafetensorsError } from '../src/index.js';
import { expectClose } from './helpers.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'pytorch-weights');
let engine: Engine;
beforeAll(async () => {
  engine = await Engine.create({ poisonAllocations: true, makeDefault: true });
});
afterAll(() => engine.destroy());

function seedCnn32(): nn.Sequential {
  return new nn.Sequential(
    new nn.Conv2d(1, 32, 3), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(32, 64, 3), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Conv2d(64, 128, 3), new nn.ReLU(), new nn.MaxPool2d(2),
    new nn.Flatten(), new nn.Linear(512, 128), new nn.ReLU(), new nn.Dropout(0.5), new nn.Linear(128, 1), new nn.Sigmoid(),
  );
}

describe('safetensors', () => {
  it('round-trips a model with PyTorch names, including BatchNorm buffers', async () => {
    manualSeed(2);
    const a = new nn.Sequential(new nn.ConvTranspose2d(8, 4, 4, { stride: 2, padding: 1 }), new nn.BatchNorm2d(4), new nn.ReLU(), new nn.Conv2d(4, 1, 3, { padding: 1 }));
    const dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-'));
    const path = join(dir, 'm.safetensors');
    await save(a, path, { note: 'test' });
    const { tensors, metadata } = readSafetensors(path);
    expect(Object.keys(tensors)).toEqual(['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked', '3.weight', '3.bias']);
    expect(tensors['0.weight'].shape).toEqual([8, 4, 4, 4]);
    expect(tensors['1.num_batches_tracked'].dtype).toBe('I64');
    expect(metadata.note).toBe('test');
    manualSeed(3);
    const b = new nn.Sequential(new nn.ConvTranspose2d(8, 4, 4, { stride: 2, padding: 1 }), new nn.BatchNorm2d(4), new nn.ReLU(), new nn.Conv2d(4, 1, 3, { padding: 1 }));
    load(b, path);
    const sa = await a.stateDict();
    const sb = await b.stateDict();
    for (const k of Object.keys(sa)) expect(Array.from(sb[k].data as Float32Array)).toEqual(Array.from(sa[k].data as Float32Array));
  });

  it('rejects a truncated file, a missing file and mismatched names/shapes with clear errors', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-'));
    const bytes = readFileSync(join(FIXTURES, 'dcgan_block.safetensors'));
    writeFileSync(join(dir, 'cut.safetensors'), bytes.subarray(0, bytes.length - 100));
    expect(() => readSafetensors(join(dir, 'cut.safetensors'))).toThrow(SafetensorsError);
    expect(() => readSafetensors(join(dir, 'cut.safetensors'))).toThrow(/truncated/);
    expect(() => readSafetensors(join(dir, 'none.safetensors'))).toThrow(/not found/);
    const wrong = new nn.Sequential(new nn.Linear(3, 2));
    expect(() => load(wrong, join(FIXTURES, 'dcgan_block.safetensors'))).toThrow(/missing keys|unexpected keys/);
    const shape = new nn.Sequential(new nn.ConvTranspose2d(8, 5, 4, { stride: 2, padding: 1 }), new nn.BatchNorm2d(4), new nn.ReLU(), new nn.Conv2d(4, 1, 3, { padding: 1 }));
    expect(() => load(shape, join(FIXTURES, 'dcgan_block.safetensors'))).toThrow(/shape/);
  });

  for (const [name, build] of [
    ['seed_cnn_32', seedCnn32],
    ['dcgan_block', () => new nn.Sequential(new nn.ConvTranspose2d(8, 4, 4, { stride: 2, padding: 1 }), new nn.BatchNorm2d(4), new nn.ReLU(), new nn.Conv2d(4, 1, 3, { padding: 1 }), new nn.Tanh())],
  ] as const) {
    it(`loads PyTorch's ${name} state dict and predicts PyTorch's eval output (rel. err <= 1e-5)`, async () => {
      const model = build();
      load(model, join(FIXTURES, `${name}.safetensors`));
      const ref = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8'));
      model.eval();
      const y = noGrad(() => model.forward(engine.tensor(Float32Array.from(ref.input.data), ref.input.shape)));
      expect(y.shape).toEqual(ref.output.shape);
      expectClose(await y.toArray(), ref.output.data, 1e-5, name);
    });
  }
});
