// The shipped NEU GAN (models/neu-gan): within the size limit, loadable, and `gan sample` writes a
// class-per-folder dataset of 64x64 images from it (what `wgsl-nn gan sample --model models/neu-gan` does).
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import { loadGanDir } from '../src/gan/model-dir.js';
import { writeSampleFolders } from '../src/gan/samples.js';

const DIR = join(import.meta.dirname, '..', 'models', 'neu-gan');
const NEU_CLASSES = ['crazing', 'inclusion', 'patches', 'pitted_surface', 'rolled-in_scale', 'scratches'];

function dirBytes(d: string): number {
  return readdirSync(d, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? dirBytes(join(d, e.name)) : statSync(join(d, e.name)).size), 0);
}

describe('models/neu-gan', () => {
  let engine: Engine;
  let out: string;
  beforeAll(async () => {
    engine = await Engine.create();
    out = mkdtempSync(join(tmpdir(), 'wgsl-nn-neu-gan-'));
  });
  afterAll(() => {
    engine.destroy();
    rmSync(out, { recursive: true, force: true });
  });

  it('is under 20 MB in all (weights, model.json, the checkpoint to continue training)', () => {
    expect(dirBytes(DIR)).toBeLessThanOrEqual(20 * 2 ** 20);
  });

  it('is a class-conditional 64x64 DCGAN of the six NEU classes, trained without the test split', () => {
    const { meta, generator } = loadGanDir(DIR, engine);
    generator.dispose();
    expect(meta.classes).toEqual(NEU_CLASSES);
    expect(meta.imageSize).toBe(64);
    expect(meta.architecture.arch).toBe('dcgan');
    const data = meta.data as { testFraction: number; splitSeed: number; files: string[] };
    expect([data.testFraction, data.splitSeed]).toEqual([0.2, 1]);
    expect(data.files.length).toBe(1083); // train + validation of the seed-1 split: 1352 - 269 test images
  });

  it('samples a class-per-folder dataset of 64x64 PNGs', async () => {
    const { generator } = loadGanDir(DIR, engine);
    const files = await writeSampleFolders(generator, out, 2, 7);
    generator.dispose();
    expect(readdirSync(out).sort()).toEqual(NEU_CLASSES);
    expect(files).toHaveLength(12);
    const stats = await sharp(files[0]).stats();
    const meta = await sharp(files[0]).metadata();
    expect([meta.width, meta.height]).toEqual([64, 64]);
    expect(stats.channels[0].stdev).toBeGreaterThan(1); // not a flat image
  });
});
