// A GAN model directory of several generators (format 'wgsl-nn-gan-mixture/1'):
//   model.json   the format, the shared classes, image size, pixel range and training split, and the
//                member directories in order (with the directories they were copied from)
//   member-0/    a complete GAN directory ('wgsl-nn-gan/1': generator, discriminator, model.json)
//   member-1/    ...
// Why: generators trained differently fail differently (one draws a class's fine structure, another its
// tone and texture), so a set drawn from several may cover a class better than one generator's; a mixture
// lets one model directory carry them and be judged and shipped like any GAN (README, TSTR: no
// mixture measured so far beat the generator shipped at the time; docs/tstr-mixture.md, docs/tstr-seed-mixture.md). Every consumer of a GAN directory (`gan sample`, `gan score`, `train --augment-with`)
// takes a mixture as it takes one generator: image i of each request comes from member i mod M, so every
// class gets an equal share from every member.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { Engine } from '../gpu/engine.js';
import { ModelFormatError, MODEL_JSON, readModelJson, writeModelDir } from '../model-dir.js';
import { GAN_FORMAT, loadGanDir, type GanMetadata } from './model-dir.js';
import type { Generator } from './models.js';

export const GAN_MIXTURE_FORMAT = 'wgsl-nn-gan-mixture/1';

/** What every GAN directory, one generator or a mixture, says about the images it makes. */
export type GanSamplerMeta = Pick<GanMetadata, 'classes' | 'imageSize' | 'pixelRange' | 'data'>;

export interface GanMixtureMetadata extends GanSamplerMeta {
  format: typeof GAN_MIXTURE_FORMAT;
  /** Member directories relative to the mixture's, in sampling order, and where each was copied from. */
  members: { dir: string; source: string }[];
  createdAt: string;
  command?: string;
}

/** Several generators of the same classes and image size, sampled in turn (see generateImages). */
export class GeneratorMixture {
  readonly config: { classes: string[]; imageSize: number };

  constructor(readonly members: Generator[]) {
    if (members.length < 2) throw new ModelFormatError(`a generator mixture needs at least 2 generators, got ${members.length}`);
    const [first] = members;
    for (const g of members) checkCompatible(g.config, first.config, 'a member', 'the first member');
    this.config = { classes: [...first.config.classes], imageSize: first.config.imageSize };
  }

  dispose(): void {
    for (const g of this.members) g.dispose();
  }
}

/** One generator or a mixture: what generateImages, writeSampleFolders and the GAN consumers take. */
export type ImageGenerator = Generator | GeneratorMixture;

/** `what` (a member) against `ref` (named `refName` in the message): the same classes in the same order, the same image size. */
function checkCompatible(c: { classes: string[]; imageSize: number }, ref: { classes: string[]; imageSize: number }, what: string, refName: string): void {
  if (c.classes.join('\n') !== ref.classes.join('\n'))
    throw new ModelFormatError(`${what} has the classes ${c.classes.join(', ')}; ${refName} has ${ref.classes.join(', ')}`);
  if (c.imageSize !== ref.imageSize) throw new ModelFormatError(`${what} makes ${c.imageSize}x${c.imageSize} images; ${refName} ${ref.imageSize}x${ref.imageSize}`);
}

/**
 * Writes a mixture directory at `out` from GAN directories `members` (each copied whole: generator,
 * discriminator, model.json; not its checkpoint, samples or snapshots), model.json last. The members must
 * share classes, image size, pixel range and training data record (the same split: a test split held out
 * from one member must be held out from all).
 */
export function writeGanMixture(out: string, members: string[], opts: { command?: string } = {}): GanMixtureMetadata {
  if (members.length < 2) throw new ModelFormatError(`a mixture needs at least 2 GAN directories, got ${members.length}`);
  const outAbs = resolve(out);
  const metas = members.map((m) => {
    if (within(outAbs, resolve(m)) || within(resolve(m), outAbs))
      throw new ModelFormatError(`the mixture ${out} cannot be written over or inside its member ${m}, nor hold it: write it to a new directory`);
    const meta = readGanSamplerMeta(m);
    if (meta.format === GAN_MIXTURE_FORMAT) throw new ModelFormatError(`${m} is itself a mixture; name its member directories instead`);
    return meta;
  });
  if (existsSync(join(out, MODEL_JSON)) && !isMixtureDir(out))
    throw new ModelFormatError(`${out} holds another kind of model; a mixture replaces only a mixture: write it to a new directory`);
  const first = metas[0];
  const firstData = splitRecord(first.data);
  metas.forEach((meta, i) => {
    checkCompatible(meta, first, members[i], `the first member (${members[0]})`);
    if (meta.pixelRange !== first.pixelRange) throw new ModelFormatError(`${members[i]}: pixel range '${meta.pixelRange}', the first member's '${first.pixelRange}'`);
    if (splitRecord(meta.data) !== firstData)
      throw new ModelFormatError(`${members[i]} was trained on other data or another split than ${members[0]} (model.json 'data' differs); a mixture's members must share the split`);
  });
  const entries = members.map((source, i) => ({ dir: `member-${i}`, source }));
  for (const { dir, source } of entries) {
    const dest = join(out, dir);
    mkdirSync(dest, { recursive: true });
    // model.json last, as writeModelDir does: a reader never sees a member's new JSON with old weights.
    for (const f of ['generator.safetensors', 'discriminator.safetensors', MODEL_JSON]) copyFileSync(join(source, f), join(dest, f));
  }
  const meta: Omit<GanMixtureMetadata, 'format'> = {
    classes: first.classes,
    imageSize: first.imageSize,
    pixelRange: first.pixelRange,
    data: first.data,
    members: entries,
    createdAt: new Date().toISOString(),
    ...(opts.command ? { command: opts.command } : {}),
  };
  writeModelDir(out, GAN_MIXTURE_FORMAT, {}, meta);
  return { format: GAN_MIXTURE_FORMAT, ...meta };
}

/** What decides which images a GAN saw and which it never saw: the dataset, the split and the training files. */
function splitRecord(data: unknown): string {
  const d = (data ?? {}) as Record<string, unknown>;
  const keys = ['root', 'className', 'splitSeed', 'testFraction', 'valFraction', 'limitPerClass', 'files'];
  return JSON.stringify(keys.map((k) => d[k] ?? null));
}

/** Whether <dir>/model.json is a readable mixture's. */
function isMixtureDir(dir: string): boolean {
  try {
    readModelJson(dir, GAN_MIXTURE_FORMAT);
    return true;
  } catch {
    return false;
  }
}

/** Whether path `a` is `b` or inside it (both absolute). */
function within(a: string, b: string): boolean {
  const r = relative(b, a);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

/** model.json of a GAN directory, one generator or a mixture (whose members are checked to be listed). */
export function readGanSamplerMeta(dir: string): GanMetadata | GanMixtureMetadata {
  const meta = readModelJson<GanMetadata | GanMixtureMetadata>(dir, [GAN_FORMAT, GAN_MIXTURE_FORMAT]);
  if (meta.format === GAN_MIXTURE_FORMAT && (!Array.isArray(meta.members) || meta.members.length < 2))
    throw new ModelFormatError(`${join(dir, MODEL_JSON)}: a mixture lists at least 2 members`);
  return meta;
}

/** The generator of a GAN directory, or all of a mixture's, ready to sample. */
export function loadGanSampler(dir: string, engine?: Engine): { meta: GanSamplerMeta; generator: ImageGenerator } {
  const meta = readGanSamplerMeta(dir);
  if (meta.format === GAN_FORMAT) return loadGanDir(dir, engine);
  const loaded: Generator[] = [];
  try {
    for (const m of meta.members) {
      const memberDir = join(dir, m.dir);
      if (!existsSync(memberDir)) throw new ModelFormatError(`${dir}: member directory ${m.dir} is missing`);
      const { generator } = loadGanDir(memberDir, engine);
      loaded.push(generator);
      checkCompatible(generator.config, meta, memberDir, `the mixture's ${MODEL_JSON}`);
    }
    return { meta, generator: new GeneratorMixture(loaded) };
  } catch (e) {
    for (const g of loaded) g.dispose();
    throw e;
  }
}
