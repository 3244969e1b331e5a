// Hostile images through the Inspector's decode path: 10^4 seeded mutants of every supported format
// and awkward variant (test/fuzz-helpers.ts), plus hand-made bombs and lying headers. Each input must
// be either inspected (finite scores summing to 1) or rejected with an ImageDecodeError whose message
// names the problem and the input; nothing may crash, throw anything else, or leave the process or the
// GPU memory in another state: a normal image gives the same answer before and after. A sample of 200
// goes through the `inspect` command in a child process and must give the same outcomes there.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/gpu/engine.js';
import { Inspector, type Inspection } from '../src/cnn/inspector.js';
import { DefectClassifier } from '../src/cnn/model.js';
import { saveModelDir } from '../src/cnn/model-dir.js';
import { ImageDecodeError, loadGray8 } from '../src/data/images.js';
import { manualSeed } from '../src/nn/seed.js';
import { craftedInputs, makeSeedImages, mutants, type FuzzInput, type SeedImage } from './fuzz-helpers.js';
import { runCli } from './helpers.js';


const MUTANTS = 10_000;
const CLI_SAMPLE = 200;
/** Inputs in flight at once: decoding (libuv threads) overlaps the GPU work of other inputs. */
const CONCURRENCY = 4;
const CLASSES = ['clean', 'crack', 'scratch', 'spot'];
/** Every rejection reads '<problem>: <name>' with one of these problems. */
const PROBLEM =
  /^(corrupt (PNG|JPEG|TIFF|WebP) \(\S.*\)|image too large: the (PNG|JPEG|TIFF|WebP) header declares \d+x\d+ pixels.*|not an image: unrecognised content.*|unsupported image format [\w/]+; convert to PNG, JPEG, TIFF or WebP|empty file \(0 bytes\))$/;
const EXT: Record<SeedImage['format'], string> = { png: '.png', jpeg: '.jpg', tiff: '.tif', webp: '.webp' };

type Outcome = { kind: 'inspected'; result: Inspection } | { kind: 'rejected'; problem: string };

let dir: string;
let modelDir: string;
let insp: Inspector;
let seeds: SeedImage[];
let normal: Buffer[];
let before: Inspection[];
let bytesInUseBefore: number;
const outcomes = new Map<string, Outcome>();
const inputs: (FuzzInput & { mutation: string; ext: string })[] = [];

/** A small random-weight classifier: the decode path does not depend on what the model learned. */
async function writeTinyModel(out: string): Promise<void> {
  const engine = await Engine.create();
  try {
    manualSeed(42);
    const model = new DefectClassifier({ task: 'multiclass', classes: CLASSES, inputSize: 24, channels: [4, 8, 8], hidden: 16, inputMean: 0.5, inputStd: 0.25 }, engine);
    await saveModelDir(out, model, { preprocessing: { grayscale: true, resize: 'fill', scale: 1 / 255, offset: 0 } });
    model.dispose();
  } finally {
    engine.destroy();
  }
}

function expectValidInspection(r: Inspection, what: string): void {
  const values = Object.values(r.scores);
  expect(Object.keys(r.scores), what).toEqual(CLASSES);
  for (const v of values) expect(Number.isFinite(v) && v >= 0 && v <= 1, `${what}: score ${v}`).toBe(true);
  expect(Math.abs(values.reduce((a, b) => a + b, 0) - 1), `${what}: scores sum`).toBeLessThan(1e-5);
  expect(CLASSES).toContain(r.label);
  expect(r.score).toBe(Math.max(...values));
}

/** The problem part of an ImageDecodeError message ('<problem>: <name of the input>'). */
function problemOf(e: unknown, what: string): string {
  if (!(e instanceof ImageDecodeError)) throw new Error(`${what}: expected an ImageDecodeError, got ${e instanceof Error ? `${e.name}: ${e.message}\n${e.stack}` : String(e)}`);
  expect(e.file.length, what).toBeGreaterThan(0);
  expect(e.message, what).toBe(`${e.problem}: ${e.file}`);
  expect(e.problem, what).toMatch(PROBLEM);
  return e.problem;
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-fuzz-'));
  modelDir = join(dir, 'model');
  await writeTinyModel(modelDir);
  insp = await Inspector.load(modelDir);
  seeds = await makeSeedImages(20260521);
  normal = ['png-gray8', 'jpeg-rgb-progressive', 'webp-lossy'].map((n) => seeds.find((s) => s.name === n)!.bytes);
  before = [];
  for (const b of normal) before.push(await insp.inspect(b));
  bytesInUseBefore = insp.engine.memory().bytesInUse;
  for (const c of craftedInputs()) inputs.push({ ...c, mutation: 'crafted', ext: '.png' });
  for (const m of mutants(seeds, MUTANTS, 7)) inputs.push({ ...m, ext: EXT[m.seed.format] });
});

afterAll(() => {
  insp?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// A hang guard, not a speed check: 10,000 decodes and inspections take minutes on a loaded 2-core software adapter.
describe('hostile images', { timeout: 600_000 }, () => {
  it('every seed image (each format and variant) decodes and inspects', async () => {
    expect(seeds.length).toBeGreaterThanOrEqual(20);
    for (const s of seeds) expectValidInspection(await insp.inspect(s.bytes), s.name);
  });

  it(`${MUTANTS} mutated images: each inspected or rejected with an ImageDecodeError naming the problem; no crash`, async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUncaught);
    const started = performance.now();
    const byMutation = new Map<string, { inspected: number; rejected: number }>();
    let fullDecodes = 0;
    try {
      await pool(inputs, CONCURRENCY, async (input, index) => {
        const counts = byMutation.get(input.mutation) ?? { inspected: 0, rejected: 0 };
        byMutation.set(input.mutation, counts);
        let outcome: Outcome;
        try {
          const result = await insp.inspect(input.bytes);
          expectValidInspection(result, input.name);
          outcome = { kind: 'inspected', result };
          counts.inspected++;
        } catch (e) {
          outcome = { kind: 'rejected', problem: problemOf(e, input.name) };
          counts.rejected++;
        }
        outcomes.set(input.name, outcome);
        // Every 5th also through the full-size decode of the training data path (no resize).
        if (index % 5 === 0) {
          fullDecodes++;
          try {
            const g = await loadGray8(input.bytes, { name: input.name });
            expect(g.data.length, input.name).toBe(g.width * g.height);
          } catch (e) {
            expect(problemOf(e, `${input.name} (loadGray8)`)).not.toBe('');
          }
        }
      });
    } finally {
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onUncaught);
    }
    const seconds = (performance.now() - started) / 1000;
    const inspected = [...outcomes.values()].filter((o) => o.kind === 'inspected').length;
    const rejected = outcomes.size - inspected;
    console.log(
      `[fuzz] ${outcomes.size} inputs (${MUTANTS} mutants + ${outcomes.size - MUTANTS} crafted): ${inspected} inspected, ${rejected} rejected ` +
        `with ImageDecodeError, 0 crashes, ${uncaught.length} uncaught; ${fullDecodes} also through loadGray8; ${seconds.toFixed(1)} s`,
    );
    console.log(`[fuzz] by mutation: ${[...byMutation].map(([m, c]) => `${m} ${c.inspected}/${c.rejected}`).join(', ')} (inspected/rejected)`);
    expect(uncaught).toEqual([]);
    expect(outcomes.size).toBe(inputs.length);
    // Both outcomes must be common, or the mutator is too gentle or too blunt to test anything.
    expect(inspected).toBeGreaterThan(outcomes.size / 10);
    expect(rejected).toBeGreaterThan(outcomes.size / 3);
    // The headers that lie about their size are refused before any decoding.
    for (const name of ['png-ihdr-100000x100000', 'png-bomb-12000x12000', 'png-ihdr-1x100000000', 'png-ihdr-16bit-rgba-60000x60000']) {
      const o = outcomes.get(name)!;
      expect(o.kind === 'rejected' && o.problem, name).toMatch(/^image too large: the PNG header declares/);
    }
    expect(outcomes.get('png-bomb-8000x8000-under-the-limit')?.kind).toBe('inspected');
  });

  it('afterwards the process is healthy: normal images give exactly the same answers, GPU memory is unchanged', async () => {
    for (let i = 0; i < normal.length; i++) expect(await insp.inspect(normal[i])).toEqual(before[i]);
    expect(insp.engine.memory().bytesInUse).toBe(bytesInUseBefore);
  });

  it(`a sample of ${CLI_SAMPLE} through \`wgsl-nn inspect\` in a child process: same outcomes, no crash`, async () => {
    expect(outcomes.size, 'runs after the fuzz test').toBe(inputs.length);
    const files = join(dir, 'images');
    mkdirSync(files);
    // The crafted inputs and evenly spaced mutants; a normal image first and last to check the process stays healthy.
    const crafted = inputs.filter((x) => x.mutation === 'crafted');
    const mutated = inputs.filter((x) => x.mutation !== 'crafted');
    const step = mutated.length / (CLI_SAMPLE - crafted.length);
    const sample = [...crafted, ...Array.from({ length: CLI_SAMPLE - crafted.length }, (_, i) => mutated[Math.floor(i * step)])];
    const fileOf = new Map<string, FuzzInput>();
    sample.forEach((x, i) => {
      const file = join(files, `${String(i + 1).padStart(4, '0')}-${x.name.replace(/[^\w.-]+/g, '_')}${x.ext}`);
      writeFileSync(file, x.bytes);
      fileOf.set(file, x);
    });
    writeFileSync(join(files, '0000-normal.png'), normal[0]);
    writeFileSync(join(files, '9999-normal.png'), normal[0]);
    const r = await runCli(['inspect', '--model', modelDir, '--json', files], { timeout: 300_000, maxBuffer: 64 << 20 });
    // Exit code 2: some images were reported unreadable, the rest inspected. Never a signal or a stack trace.
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stderr).not.toMatch(/CRITICAL|Segmentation|Aborted/);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { path: string; error?: string } & Partial<Inspection>);
    expect(lines).toHaveLength(sample.length + 2);
    const first = lines[0];
    const last = lines[lines.length - 1];
    expect(first.path.endsWith('0000-normal.png')).toBe(true);
    expect({ ...last, path: '' }).toEqual({ ...first, path: '' });
    let inspected = 0;
    for (const line of lines.slice(1, -1)) {
      const input = fileOf.get(line.path)!;
      const inProcess = outcomes.get(input.name)!;
      if (line.error !== undefined) {
        expect(inProcess.kind, `${input.name}: rejected by the CLI (${line.error}), inspected in process`).toBe('rejected');
        expect(line.error.endsWith(`: ${line.path}`), line.error).toBe(true);
        // The same problem. Not always in the same words: a file's error also says what its extension
        // claimed, and libvips' detail for a corrupt file is not always the same ('Unknown error' at times).
        const problem = (p: string) => p.replace(/ \(named \.\w+ but its content has no \w+ signature\)/, '').replace(/^(corrupt \w+) \(.*\)$/, '$1');
        expect(problem(line.error.slice(0, -`: ${line.path}`.length)), input.name).toBe(problem((inProcess as { problem: string }).problem));
      } else {
        inspected++;
        expect(inProcess.kind, `${input.name}: inspected by the CLI, rejected in process`).toBe('inspected');
        const want = (inProcess as { result: Inspection }).result;
        // The CLI's engine may use other (autotuned) kernel variants: equal to float rounding.
        for (const c of CLASSES) expect(line.scores![c], `${input.name} ${c}`).toBeCloseTo(want.scores[c], 5);
      }
    }
    console.log(`[fuzz] CLI: ${sample.length} files, ${inspected} inspected, ${sample.length - inspected} reported unreadable, exit code ${r.code}`);
  });
});
