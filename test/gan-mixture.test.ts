// GAN directories of several generators (src/gan/mixture.ts). A mixture: written from GAN directories, loaded
// as one sampler whose image i comes from member i mod M (checked value for value against the members
// sampled alone), used by `gan sample`, `gan score` and `train --augment-with`, and clear refusals for
// members that do not belong together. Two tiny generators (16x16, 1 epoch) of different architectures.
// A class set: one-class generators joined into one multi-class sampler, class k from member k, checked
// the same way, with its own refusals.
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { floatToU8 } from '../src/data/images.js';
import { generateSynthetic } from '../src/data/synthetic.js';
import type { Engine } from '../src/gpu/engine.js';
import { GeneratorClassSet, GeneratorMixture, loadGanSampler, writeGanClassSet, writeGanMixture, GAN_CLASS_SET_FORMAT, GAN_MIXTURE_FORMAT } from '../src/gan/mixture.js';
import { loadGanDir } from '../src/gan/model-dir.js';
import { generateImages, recomputeGeneratorStatistics, writeSampleFolders } from '../src/gan/samples.js';
import { scoreGan } from '../src/gan/score.js';
import { trainGan, type GanTrainOptions } from '../src/gan/train.js';
import { trainClassifier } from '../src/cnn/train.js';
import { readModelMetadata } from '../src/cnn/model-dir.js';
import { Rng } from '../src/util/rng.js';
import { runCli, testEngine, tinyGanOptions } from './helpers.js';

const CLASSES = ['clean', 'crack', 'inclusion', 'patch', 'scratch', 'spot'];
let engine: Engine;
let dir: string;
let data: string;
let a: string;
let b: string;
let mix: string;

const tiny = (out: string, extra: Partial<GanTrainOptions> = {}): GanTrainOptions => tinyGanOptions(data, out, engine, { epochs: 1, ...extra });

beforeAll(async () => {
  engine = await testEngine();
  dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-gan-mixture-'));
  data = join(dir, 'data');
  await generateSynthetic({ outDir: data, perClass: 10, size: 24, seed: 5 });
  a = join(dir, 'a');
  b = join(dir, 'b');
  await trainGan(tiny(a, { seed: 1 }));
  // Another architecture (wider, conditional BatchNorm, another latent size): members need only share classes, size and split.
  await trainGan(tiny(b, { seed: 2, splitSeed: 1, ngf: 6, latentDim: 5, conditionalBatchNorm: true }));
  mix = join(dir, 'mix');
  writeGanMixture(mix, [a, b]);
}, 120_000);
afterAll(() => {
  engine.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('GAN mixture directory', () => {
  it('holds complete copies of its members and records them in order', () => {
    const meta = JSON.parse(readFileSync(join(mix, 'model.json'), 'utf8'));
    expect(meta.format).toBe(GAN_MIXTURE_FORMAT);
    expect(meta.classes).toEqual(CLASSES);
    expect(meta.imageSize).toBe(16);
    expect(meta.members).toEqual([
      { dir: 'member-0', source: a },
      { dir: 'member-1', source: b },
    ]);
    expect(meta.data).toEqual(JSON.parse(readFileSync(join(a, 'model.json'), 'utf8')).data);
    for (const [m, src] of [['member-0', a], ['member-1', b]])
      for (const f of ['generator.safetensors', 'discriminator.safetensors', 'model.json'])
        expect(readFileSync(join(mix, m, f)).equals(readFileSync(join(src, f)))).toBe(true);
    // Not the training state: a mixture is for sampling.
    expect(existsSync(join(mix, 'member-0', 'checkpoint'))).toBe(false);
  });

  it('samples image i from member i mod 2, each member drawing its noise from the one stream in turn', async () => {
    const { generator, meta } = loadGanSampler(mix, engine);
    const ga = loadGanDir(a, engine).generator;
    const gb = loadGanDir(b, engine).generator;
    try {
      expect(generator).toBeInstanceOf(GeneratorMixture);
      expect(meta.classes).toEqual(CLASSES);
      const labels = [0, 5, 2, 2, 1, 3, 4];
      const got = await generateImages(generator, labels, new Rng(11));
      // Expected, apart: member 0 makes images 0, 2, 4, 6 from Rng(11); member 1 then 1, 3, 5 from the same stream.
      const rng = new Rng(11);
      const fromA = await generateImages(ga, [0, 2, 1, 4], rng);
      const fromB = await generateImages(gb, [5, 2, 3], rng);
      const area = 16 * 16;
      const want = new Float32Array(labels.length * area);
      [0, 2, 4, 6].forEach((i, j) => want.set(fromA.subarray(j * area, (j + 1) * area), i * area));
      [1, 3, 5].forEach((i, j) => want.set(fromB.subarray(j * area, (j + 1) * area), i * area));
      expect(got).toEqual(want);
      // The two members really differ (otherwise the check above proves little).
      const sameNoiseA = await generateImages(ga, [5], new Rng(3));
      const sameNoiseB = await generateImages(gb, [5], new Rng(3));
      expect(sameNoiseA).not.toEqual(sameNoiseB);
      expect(got.every((v) => v >= 0 && v <= 1)).toBe(true);
      // Standing statistics reach every member: the images of both members' positions change.
      recomputeGeneratorStatistics(generator, 1, 4, 8);
      const after = await generateImages(generator, labels, new Rng(11));
      expect(after.subarray(0, area)).not.toEqual(got.subarray(0, area));
      expect(after.subarray(area, 2 * area)).not.toEqual(got.subarray(area, 2 * area));
    } finally {
      generator.dispose();
      ga.dispose();
      gb.dispose();
    }
  });

  it('writeSampleFolders from a mixture: an equal share of every class from each member, as generateImages draws it', async () => {
    const { generator } = loadGanSampler(mix, engine);
    const out = join(dir, 'samples');
    try {
      const files = await writeSampleFolders(generator, out, 4, 9);
      expect(files).toHaveLength(24);
      expect(readdirSync(out).sort()).toEqual(CLASSES);
      const rng = new Rng(9);
      for (const [k, c] of CLASSES.entries()) {
        const want = floatToU8(await generateImages(generator, new Int32Array(4).fill(k), rng));
        for (let i = 0; i < 4; i++) {
          const { data: px } = await sharp(join(out, c, `${c}_0000${i}.png`)).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
          expect(Uint8Array.from(px)).toEqual(want.subarray(i * 256, (i + 1) * 256));
        }
      }
    } finally {
      generator.dispose();
    }
  });

  it('wgsl-nn gan mix / gan sample / gan score / train --augment-with take a mixture as they take one generator', async () => {
    const cliMix = join(dir, 'cli-mix');
    const made = await runCli(['gan', 'mix', '--members', `${a},${b}`, '--out', cliMix]);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toMatch(/2 generators/);
    const sampled = await runCli(['gan', 'sample', '--model', cliMix, '--count', '3', '--out', join(dir, 'cli-samples')]);
    expect(sampled.code, sampled.stderr).toBe(0);
    for (const c of CLASSES) expect(readdirSync(join(dir, 'cli-samples', c))).toHaveLength(3);

    const classifier = join(dir, 'classifier');
    await trainClassifier({ data, task: 'multiclass', out: classifier, inputSize: 24, channels: [4, 8, 8], epochs: 1, batchSize: 16, engine, valFraction: 0.2 });
    expect(() => loadGanSampler(classifier, engine)).toThrow(/this is a 'wgsl-nn-classifier\/1' model directory; expected format wgsl-nn-gan\/1 or wgsl-nn-gan-mixture\/1 or wgsl-nn-gan-classes\/1/);
    const r = await scoreGan({ model: cliMix, data, classifier, engine, kidSubsets: 5 });
    expect(r.perClass.map((c) => c.className)).toEqual(CLASSES);
    expect(r.perClass.every((c) => c.fd > 0 && Number.isFinite(c.fd) && c.halfSize === 5)).toBe(true);

    await trainClassifier({ data, task: 'multiclass', out: join(dir, 'augmented'), inputSize: 24, channels: [4, 8, 8], epochs: 1, batchSize: 8, engine, augmentWith: cliMix, syntheticRatio: 0.5 });
    expect(readModelMetadata(join(dir, 'augmented')).training?.synthetic).toMatchObject({ ratio: 0.5, perClass: { clean: 3, spot: 3 } });
  }, 180_000);

  it('refuses members that do not belong together, a mixture over or inside a member, and a damaged mixture', async () => {
    // Another split: the test images of one member could be training images of the other.
    const otherSplit = join(dir, 'other-split');
    await trainGan(tiny(otherSplit, { seed: 3, splitSeed: 7 }));
    expect(() => writeGanMixture(join(dir, 'x1'), [a, otherSplit])).toThrow(/trained on other data or another split .* must share the split/);
    const oneClass = join(dir, 'one-class');
    await trainGan(tiny(oneClass, { className: 'crack' }));
    expect(() => writeGanMixture(join(dir, 'x2'), [a, oneClass])).toThrow(/has the classes crack; the first member \(.*\) has clean, crack/);
    const bigger = join(dir, 'bigger');
    await trainGan(tiny(bigger, { imageSize: 32 }));
    expect(() => writeGanMixture(join(dir, 'x3'), [a, bigger])).toThrow(/makes 32x32 images; the first member \(.*\) 16x16/);
    expect(() => writeGanMixture(join(dir, 'x4'), [a])).toThrow(/at least 2 GAN directories/);
    expect(() => writeGanMixture(otherSplit, [a, b])).toThrow(/holds another kind of model; a mixture replaces only a mixture/);
    // A mixture may be rewritten in place (members reordered here).
    expect(writeGanMixture(join(dir, 'cli-mix'), [b, a]).members.map((m) => m.source)).toEqual([b, a]);
    expect(JSON.parse(readFileSync(join(dir, 'cli-mix', 'member-0', 'model.json'), 'utf8')).architecture.ngf).toBe(6);
    expect(() => writeGanMixture(a, [a, b])).toThrow(/cannot be written over or inside its member/);
    expect(() => writeGanMixture(join(a, 'inner'), [a, b])).toThrow(/cannot be written over or inside its member/);
    expect(() => writeGanMixture(join(dir, 'x5'), [mix, a])).toThrow(/is itself a mixture; name its member directories/);
    expect(() => writeGanMixture(join(dir, 'x6'), [a, join(dir, 'nope')])).toThrow(/model directory not found/);
    expect(existsSync(join(dir, 'x1', 'model.json'))).toBe(false);
    // One generator's loader names what it found.
    expect(() => loadGanDir(mix, engine)).toThrow(/this is a 'wgsl-nn-gan-mixture\/1' model directory; expected format wgsl-nn-gan\/1/);
    // A mixture whose member folder went missing, or whose model.json lists fewer than two.
    const broken = join(dir, 'broken');
    cpSync(mix, broken, { recursive: true });
    rmSync(join(broken, 'member-1'), { recursive: true });
    expect(() => loadGanSampler(broken, engine)).toThrow(/member directory member-1 is missing/);
    // A member folder replaced by a generator of other classes after the mixture was written.
    cpSync(oneClass, join(broken, 'member-1'), { recursive: true });
    expect(() => loadGanSampler(broken, engine)).toThrow(/member-1 has the classes crack; the mixture's model.json has clean, crack/);
    const meta = JSON.parse(readFileSync(join(broken, 'model.json'), 'utf8'));
    writeFileSync(join(broken, 'model.json'), JSON.stringify({ ...meta, members: meta.members.slice(0, 1) }));
    expect(() => loadGanSampler(broken, engine)).toThrow(/a mixture lists at least 2 members/);
    const cli = await runCli(['gan', 'sample', '--model', broken, '--count', '1', '--out', join(dir, 'never')]);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toMatch(/a mixture lists at least 2 members/);
  }, 180_000);
});

describe('GAN class set directory (one one-class generator per class)', () => {
  // Three one-class generators of the mixture tests' data and split, joined out of alphabetical order.
  const SET_CLASSES = ['spot', 'clean', 'crack'];
  let members: string[];
  let set: string;
  beforeAll(async () => {
    members = SET_CLASSES.map((c) => join(dir, `one-${c}`));
    for (const [i, c] of SET_CLASSES.entries()) await trainGan(tiny(members[i], { className: c, seed: i + 1, splitSeed: 1, ngf: 4 + i }));
    set = join(dir, 'set');
    writeGanClassSet(set, members);
  }, 120_000);

  it('records its members in class order with the union of their training files, and samples class k from member k', async () => {
    const meta = JSON.parse(readFileSync(join(set, 'model.json'), 'utf8'));
    expect(meta.format).toBe(GAN_CLASS_SET_FORMAT);
    expect(meta.classes).toEqual(SET_CLASSES);
    expect(meta.members).toEqual(SET_CLASSES.map((c, i) => ({ dir: `member-${i}`, source: members[i], className: c })));
    const memberFiles = members.map((m) => JSON.parse(readFileSync(join(m, 'model.json'), 'utf8')).data.files as string[]);
    expect(memberFiles.every((f) => f.length > 0)).toBe(true);
    expect(meta.data.files).toEqual(memberFiles.flat());
    expect(meta.data.images).toBe(memberFiles.flat().length);
    expect(meta.data.className).toBeNull();
    expect(meta.data.splitSeed).toBe(1);

    const { generator } = loadGanSampler(set, engine);
    const singles = members.map((m) => loadGanDir(m, engine).generator);
    try {
      expect(generator).toBeInstanceOf(GeneratorClassSet);
      expect(generator.config.classes).toEqual(SET_CLASSES);
      const labels = [2, 0, 1, 2, 2, 0];
      const got = await generateImages(generator, labels, new Rng(13));
      // Expected, apart: class 0 (images 1, 5) from member 0, then class 1 (image 2), then class 2 (0, 3, 4), one stream.
      const rng = new Rng(13);
      const area = 16 * 16;
      const want = new Float32Array(labels.length * area);
      for (const [k, picked] of [[1, 5], [2], [0, 3, 4]].entries()) {
        const images = await generateImages(singles[k], new Int32Array(picked.length), rng);
        picked.forEach((i, j) => want.set(images.subarray(j * area, (j + 1) * area), i * area));
      }
      expect(got).toEqual(want);
      expect(got.every((v) => v >= 0 && v <= 1)).toBe(true);
      // The members really differ: the same noise through two of them.
      expect(await generateImages(singles[0], [0], new Rng(3))).not.toEqual(await generateImages(singles[1], [0], new Rng(3)));
      await expect(generateImages(generator, [0, 3], new Rng(1))).rejects.toThrow(/class label 3 at 1: this class set makes classes 0..2/);
    } finally {
      generator.dispose();
      for (const g of singles) g.dispose();
    }
  });

  it('wgsl-nn gan join / gan sample: one folder per class, each from its own generator, and a contact sheet of them', async () => {
    const cliSet = join(dir, 'cli-set');
    const made = await runCli(['gan', 'join', '--members', members.join(','), '--out', cliSet]);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout).toMatch(/3 one-class generators, classes spot, clean, crack, 16x16/);
    const out = join(dir, 'set-samples');
    const sheet = join(dir, 'set-sheet.png');
    const sampled = await runCli(['gan', 'sample', '--model', cliSet, '--count', '2', '--out', out, '--seed', '4', '--sheet', sheet]);
    expect(sampled.code, sampled.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['clean', 'crack', 'spot']);
    // The contact sheet: one row per class in the set's order (spot, clean, crack), 2 tiles each, 2 px gaps.
    const { data: sheetPx, info } = await sharp(sheet).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([2 * 16 + 3 * 2, 3 * 16 + 4 * 2]);
    const { data: clean1 } = await sharp(join(out, 'clean', 'clean_00001.png')).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    const tile = new Uint8Array(256);
    for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) tile[y * 16 + x] = sheetPx[(2 + 18 + y) * info.width + 2 + 18 + x];
    expect(tile).toEqual(Uint8Array.from(clean1));
    // writeSampleFolders draws class by class from one stream: class 'clean' is the second request.
    const rng = new Rng(4);
    const [g0, g1] = [0, 1].map((k) => loadGanDir(members[k], engine).generator);
    let want: Uint8Array;
    try {
      await generateImages(g0, new Int32Array(2), rng);
      want = floatToU8(await generateImages(g1, new Int32Array(2), rng));
    } finally {
      g0.dispose();
      g1.dispose();
    }
    for (let i = 0; i < 2; i++) {
      const { data: px } = await sharp(join(out, 'clean', `clean_0000${i}.png`)).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
      expect(Uint8Array.from(px)).toEqual(want.subarray(i * 256, (i + 1) * 256));
    }
  }, 120_000);

  it('refuses members that are not one distinct class each of one split, and a damaged set', async () => {
    expect(() => writeGanClassSet(join(dir, 'y1'), [members[0], a])).toThrow(/is not a one-class GAN \(it makes clean, crack, .*\); a class set's members are trained with `gan train --class <name>`/);
    const unconditional = join(dir, 'unconditional');
    await trainGan(tiny(unconditional, { unconditional: true }));
    expect(() => writeGanClassSet(join(dir, 'y2'), [members[0], unconditional])).toThrow(/is not a one-class GAN \(it makes all\)/);
    const spotAgain = join(dir, 'spot-again');
    await trainGan(tiny(spotAgain, { className: 'spot', seed: 9, splitSeed: 1 }));
    expect(() => writeGanClassSet(join(dir, 'y3'), [members[0], members[1], spotAgain])).toThrow(/both make class 'spot'; a class set has one member per class/);
    const otherSplit = join(dir, 'scratch-split7');
    await trainGan(tiny(otherSplit, { className: 'scratch', splitSeed: 7 }));
    expect(() => writeGanClassSet(join(dir, 'y4'), [members[0], otherSplit])).toThrow(/another split .* a class set's members must share the split/);
    const bigger = join(dir, 'scratch-32');
    await trainGan(tiny(bigger, { className: 'scratch', splitSeed: 1, imageSize: 32 }));
    expect(() => writeGanClassSet(join(dir, 'y5'), [members[0], bigger])).toThrow(/makes 32x32 images; the first member \(.*\) 16x16/);
    expect(() => writeGanClassSet(join(dir, 'y6'), [members[0]])).toThrow(/at least 2 one-class GAN directories/);
    expect(() => writeGanClassSet(join(dir, 'y7'), [set, members[0]])).toThrow(/is itself a class set; name its member directories/);
    expect(() => writeGanClassSet(members[0], members)).toThrow(/the class set .* cannot be written over or inside its member/);
    expect(() => writeGanClassSet(mix, members)).toThrow(/holds another kind of model; a class set replaces only a class set/);
    expect(() => writeGanMixture(join(dir, 'y8'), [set, a])).toThrow(/is itself a class set/);
    for (const y of ['y1', 'y2', 'y3', 'y4', 'y5']) expect(existsSync(join(dir, y, 'model.json'))).toBe(false);

    const broken = join(dir, 'broken-set');
    cpSync(set, broken, { recursive: true });
    // A member folder replaced by another class's generator after the set was written.
    rmSync(join(broken, 'member-1'), { recursive: true });
    cpSync(members[2], join(broken, 'member-1'), { recursive: true });
    expect(() => loadGanSampler(broken, engine)).toThrow(/member-1 has the classes crack; the class set's model.json has clean/);
    rmSync(join(broken, 'member-1'), { recursive: true });
    expect(() => loadGanSampler(broken, engine)).toThrow(/member directory member-1 is missing/);
    const meta = JSON.parse(readFileSync(join(broken, 'model.json'), 'utf8'));
    writeFileSync(join(broken, 'model.json'), JSON.stringify({ ...meta, members: meta.members.slice(0, 2) }));
    expect(() => loadGanSampler(broken, engine)).toThrow(/a class set lists one member per class, at least 2/);
  }, 180_000);
});
