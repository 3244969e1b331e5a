// GAN model directories of several generators, two kinds:
//
// A mixture (format 'wgsl-nn-gan-mixture/1'): members of the same classes, sampled in turn.
//   model.json   the format, the shared classes, image size, pixel range and training split, and the
//                member directories in order (with the directories they were copied from)
//   member-0/    a complete GAN directory ('wgsl-nn-gan/1': generator, discriminator, model.json)
//   member-1/    ...
// Why: generators trained differently fail differently (one draws a class's fine structure, another its
// tone and texture), so a set drawn from several may cover a class better than one generator's; a mixture
// lets one model directory carry them and be judged and shipped like any GAN (README, TSTR: no
// mixture measured so far beat the generator shipped at the time; docs/tstr-mixture.md, docs/tstr-seed-mixture.md).
// Image i of each request comes from member i mod M, so every class gets an equal share from every member.
//
// A class set (format 'wgsl-nn-gan-classes/1'): one single-class generator per class (`gan train --class c`),
// class k drawn from member k; the same layout, each member also recording its class. Why: the issue's
// other design ("per defect class"): a generator that only ever sees one class cannot mix it up with
// another, at the price of sharing nothing between classes. The set makes such generators one
// multi-class model.
//
// Every consumer of a GAN directory (`gan sample`, `gan score`, `train --augment-with`, the TSTR script)
// takes either kind as it takes one generator.
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { Engine } from '../gpu/engine.js';
import { ModelFormatError, MODEL_JSON, readModelJson, writeModelDir } from '../model-dir.js';
import { GAN_FORMAT, loadGanDir, type GanMetadata } from './model-dir.js';
import type { Generator } from './models.js';

export const GAN_MIXTURE_FORMAT = 'wgsl-nn-gan-mixture/1';
export const GAN_CLASS_SET_FORMAT = 'wgsl-nn-gan-classes/1';

/** What every GAN directory, one generator, a mixture or a class set, says about the images it makes. */
export type GanSamplerMeta = Pick<GanMetadata, 'classes' | 'imageSize' | 'pixelRange' | 'data'>;

/** model.json of a directory of several generators, beside its members. */
interface MultiGeneratorMetadata extends GanSamplerMeta {
  createdAt: string;
  command?: string;
}

export interface GanMixtureMetadata extends MultiGeneratorMetadata {
  format: typeof GAN_MIXTURE_FORMAT;
  /** Member directories relative to the mixture's, in sampling order, and where each was copied from. */
  members: { dir: string; source: string }[];
}

export interface GanClassSetMetadata extends MultiGeneratorMetadata {
  format: typeof GAN_CLASS_SET_FORMAT;
  /** One member per class, in the order of `classes`: its directory relative to the set's, where it was copied from, and its class. */
  members: { dir: string; source: string; className: string }[];
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

/** One single-class generator per class, class k drawn from member k (see generateImages). */
export class GeneratorClassSet {
  readonly config: { classes: string[]; imageSize: number };

  constructor(readonly members: Generator[]) {
    if (members.length < 2) throw new ModelFormatError(`a class set needs at least 2 generators, got ${members.length}`);
    const classes = members.map((g, i) => {
      if (g.config.classes.length !== 1) throw new ModelFormatError(`class-set member ${i} makes the classes ${g.config.classes.join(', ')}; each member makes one class`);
      return g.config.classes[0];
    });
    const repeated = classes.find((c, i) => classes.indexOf(c) !== i);
    if (repeated !== undefined) throw new ModelFormatError(`two class-set members make class '${repeated}'`);
    for (const g of members)
      if (g.config.imageSize !== members[0].config.imageSize)
        throw new ModelFormatError(`class-set members make ${g.config.imageSize}x${g.config.imageSize} and ${members[0].config.imageSize}x${members[0].config.imageSize} images`);
    this.config = { classes, imageSize: members[0].config.imageSize };
  }

  dispose(): void {
    for (const g of this.members) g.dispose();
  }
}

/** One generator, a mixture or a class set: what generateImages, writeSampleFolders and the GAN consumers take. */
export type ImageGenerator = Generator | GeneratorMixture | GeneratorClassSet;

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
  const metas = readMembers(out, members, GAN_MIXTURE_FORMAT, 'mixture');
  const first = metas[0];
  const firstData = splitRecord(first.data);
  metas.forEach((meta, i) => {
    checkCompatible(meta, first, members[i], `the first member (${members[0]})`);
    if (meta.pixelRange !== first.pixelRange) throw new ModelFormatError(`${members[i]}: pixel range '${meta.pixelRange}', the first member's '${first.pixelRange}'`);
    if (splitRecord(meta.data) !== firstData)
      throw new ModelFormatError(`${members[i]} was trained on other data or another split than ${members[0]} (model.json 'data' differs); a mixture's members must share the split`);
  });
  const entries = copyMembers(out, members);
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

/**
 * Writes a class set at `out` from one-class GAN directories `members` (each trained with `--class`; copied
 * whole as a mixture's are), model.json last. The members make distinct classes, in the order given; they
 * must share image size, pixel range, dataset and split (seed, fractions, limit), so that the set's test
 * split is every member's. The set records the union of its members' training files (and their count).
 */
export function writeGanClassSet(out: string, members: string[], opts: { command?: string } = {}): GanClassSetMetadata {
  if (members.length < 2) throw new ModelFormatError(`a class set needs at least 2 one-class GAN directories, got ${members.length}`);
  const metas = readMembers(out, members, GAN_CLASS_SET_FORMAT, 'class set');
  const first = metas[0];
  const firstSplit = splitRecord(first.data, SPLIT_KEYS);
  const classes = metas.map((meta, i) => {
    const trainedOn = (meta.data as { className?: string } | undefined)?.className;
    if (meta.classes.length !== 1 || trainedOn !== meta.classes[0])
      throw new ModelFormatError(`${members[i]} is not a one-class GAN (it makes ${meta.classes.join(', ')}); a class set's members are trained with \`gan train --class <name>\``);
    const j = metas.findIndex((m) => m.classes[0] === meta.classes[0]);
    if (j !== i) throw new ModelFormatError(`${members[j]} and ${members[i]} both make class '${meta.classes[0]}'; a class set has one member per class`);
    if (meta.imageSize !== first.imageSize) throw new ModelFormatError(`${members[i]} makes ${meta.imageSize}x${meta.imageSize} images; the first member (${members[0]}) ${first.imageSize}x${first.imageSize}`);
    if (meta.pixelRange !== first.pixelRange) throw new ModelFormatError(`${members[i]}: pixel range '${meta.pixelRange}', the first member's '${first.pixelRange}'`);
    if (splitRecord(meta.data, SPLIT_KEYS) !== firstSplit)
      throw new ModelFormatError(`${members[i]} was trained on other data or another split than ${members[0]} (model.json 'data' differs); a class set's members must share the split`);
    return meta.classes[0];
  });
  const records = metas.map((m) => (m.data ?? {}) as { files?: string[]; images?: number });
  const files = records.flatMap((d) => d.files ?? []);
  const images = records.reduce((n, d) => n + (d.images ?? 0), 0);
  const entries = copyMembers(out, members).map((e, i) => ({ ...e, className: classes[i] }));
  const meta: Omit<GanClassSetMetadata, 'format'> = {
    classes,
    imageSize: first.imageSize,
    pixelRange: first.pixelRange,
    data: { ...(first.data as object), className: null, images, files },
    members: entries,
    createdAt: new Date().toISOString(),
    ...(opts.command ? { command: opts.command } : {}),
  };
  writeModelDir(out, GAN_CLASS_SET_FORMAT, {}, meta);
  return { format: GAN_CLASS_SET_FORMAT, ...meta };
}

/**
 * The members' model.json, after checking that `out` (to hold a directory of `format`, named `kind` in
 * messages) neither is nor holds nor sits inside a member, that no member is itself a multi-generator
 * directory, and that `out` holds no other kind of model.
 */
function readMembers(out: string, members: string[], format: string, kind: string): GanMetadata[] {
  const outAbs = resolve(out);
  const metas = members.map((m) => {
    if (within(outAbs, resolve(m)) || within(resolve(m), outAbs))
      throw new ModelFormatError(`the ${kind} ${out} cannot be written over or inside its member ${m}, nor hold it: write it to a new directory`);
    const meta = readGanSamplerMeta(m);
    if (meta.format !== GAN_FORMAT) throw new ModelFormatError(`${m} is itself a ${meta.format === GAN_MIXTURE_FORMAT ? 'mixture' : 'class set'}; name its member directories instead`);
    return meta;
  });
  if (existsSync(join(out, MODEL_JSON)) && !isModelDirOf(out, format))
    throw new ModelFormatError(`${out} holds another kind of model; a ${kind} replaces only a ${kind}: write it to a new directory`);
  return metas;
}

/** Copies each member's generator, discriminator and model.json (not its checkpoint, samples or snapshots) to out/member-i. */
function copyMembers(out: string, members: string[]): { dir: string; source: string }[] {
  const entries = members.map((source, i) => ({ dir: `member-${i}`, source }));
  for (const { dir, source } of entries) {
    const dest = join(out, dir);
    mkdirSync(dest, { recursive: true });
    // model.json last, as writeModelDir does: a reader never sees a member's new JSON with old weights.
    for (const f of ['generator.safetensors', 'discriminator.safetensors', MODEL_JSON]) copyFileSync(join(source, f), join(dest, f));
  }
  return entries;
}

/** The split alone: which dataset, and how it was divided (the same for every class's GAN of one split). */
const SPLIT_KEYS = ['root', 'splitSeed', 'testFraction', 'valFraction', 'limitPerClass'];

/** What decides which images a GAN saw and which it never saw: the dataset, the split and the training files. */
function splitRecord(data: unknown, keys = [...SPLIT_KEYS, 'className', 'files']): string {
  const d = (data ?? {}) as Record<string, unknown>;
  return JSON.stringify(keys.map((k) => d[k] ?? null));
}

/** Whether <dir>/model.json is a readable model directory of `format`. */
function isModelDirOf(dir: string, format: string): boolean {
  try {
    readModelJson(dir, format);
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

/** model.json of a GAN directory: one generator, a mixture or a class set (whose members are checked to be listed). */
export function readGanSamplerMeta(dir: string): GanMetadata | GanMixtureMetadata | GanClassSetMetadata {
  const meta = readModelJson<GanMetadata | GanMixtureMetadata | GanClassSetMetadata>(dir, [GAN_FORMAT, GAN_MIXTURE_FORMAT, GAN_CLASS_SET_FORMAT]);
  if (meta.format === GAN_MIXTURE_FORMAT && (!Array.isArray(meta.members) || meta.members.length < 2))
    throw new ModelFormatError(`${join(dir, MODEL_JSON)}: a mixture lists at least 2 members`);
  if (meta.format === GAN_CLASS_SET_FORMAT && (!Array.isArray(meta.members) || meta.members.length < 2 || meta.members.length !== meta.classes?.length))
    throw new ModelFormatError(`${join(dir, MODEL_JSON)}: a class set lists one member per class, at least 2`);
  return meta;
}

/** The generator of a GAN directory, or all of a mixture's or class set's, ready to sample. */
export function loadGanSampler(dir: string, engine?: Engine): { meta: GanSamplerMeta; generator: ImageGenerator } {
  const meta = readGanSamplerMeta(dir);
  if (meta.format === GAN_FORMAT) return loadGanDir(dir, engine);
  const kind = meta.format === GAN_MIXTURE_FORMAT ? 'mixture' : 'class set';
  const loaded: Generator[] = [];
  try {
    for (const [k, m] of meta.members.entries()) {
      const memberDir = join(dir, m.dir);
      if (!existsSync(memberDir)) throw new ModelFormatError(`${dir}: member directory ${m.dir} is missing`);
      const { generator } = loadGanDir(memberDir, engine);
      loaded.push(generator);
      // A class set's member k makes class k alone; a mixture's members make every class.
      const expected = meta.format === GAN_MIXTURE_FORMAT ? meta : { classes: [meta.classes[k]], imageSize: meta.imageSize };
      checkCompatible(generator.config, expected, memberDir, `the ${kind}'s ${MODEL_JSON}`);
    }
    return { meta, generator: meta.format === GAN_MIXTURE_FORMAT ? new GeneratorMixture(loaded) : new GeneratorClassSet(loaded) };
  } catch (e) {
    for (const g of loaded) g.dispose();
    throw e;
  }
}
