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
import { Inspector } from '../src/cnn/inspector.js';
import { runCli } from './helpers.js';

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
    // Since the sixteenth session (R25): resize convolutions in G, spectral norm in D, two D steps per G step.
    expect(meta.architecture).toMatchObject({ ngf: 16, ndf: 16, spectralNorm: true, upsampling: 'nearest' });
    expect((meta.training as { discriminatorSteps?: number }).discriminatorSteps).toBe(2);
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

  it('wgsl-nn gan sample --filter-with models/neu keeps only what the classifier assigns to each class, and says how many it accepted', async () => {
    const dest = join(out, 'filtered');
    const r = await runCli(['gan', 'sample', '--model', DIR, '--count', '3', '--out', dest, '--seed', '2', '--truncation', '1.5', '--filter-with', 'models/neu', '--min-confidence', '0.5', '--max-draw-factor', '200']);
    expect(r.stderr).not.toMatch(/Error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/18 images \(3 per class/);
    for (const c of NEU_CLASSES) {
      expect(readdirSync(join(dest, c))).toHaveLength(3);
      expect(r.stderr).toMatch(new RegExp(`${c}: the filter accepted \\d+ of \\d+ drawn`));
    }
    // What was kept, read back as the classifier reads files: every image called its own class.
    const insp = await Inspector.load('models/neu', { engine });
    const decided = await insp.inspectBatch(NEU_CLASSES.flatMap((c) => readdirSync(join(dest, c)).map((f) => join(dest, c, f))));
    insp.dispose();
    expect(decided.map((d) => d.label)).toEqual(NEU_CLASSES.flatMap((c) => [c, c, c]));
    expect(decided.every((d) => d.score >= 0.5)).toBe(true);
    const bad = await runCli(['gan', 'sample', '--model', DIR, '--count', '1', '--out', join(out, 'bad'), '--filter-with', 'models/magnetic-tile']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/needs a multiclass classifier/);
  }, 300_000);
});
