// Crash-safe training: `wgsl-nn train` is killed with SIGKILL at seeded random moments (after a
// checkpoint exists, so sometimes mid-epoch, sometimes while a checkpoint or the best model is being
// written) and restarted with --resume each time. Every time the checkpoint left behind must be
// complete (each file matching the length and SHA-256 that its state.json records), the restart must
// continue from it (losing at most the epoch in progress), and the finished model directory must load
// and hold the full history, equal to that of an uninterrupted run of the same command.
// Then the same at exact points: killed between two files of a checkpoint save (a preload makes the
// process kill itself before its Nth rename into the checkpoint directory).
// No timing assertions: the delays only choose where the kills land.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Inspector } from '../src/cnn/inspector.js';
import { generateSynthetic } from '../src/data/synthetic.js';
import { Rng } from '../src/util/rng.js';

const ROOT = join(import.meta.dirname, '..');
const EPOCHS = 16;
const KILLS = 4;
/** A kill lands a seeded random 0 to this many epochs (timed on this machine) after a new checkpoint. */
const MAX_DELAY_EPOCHS = 1.5;
const TRAIN = ['--size', '24', '--channels', '4,8,8', '--batch-size', '4', '--seed', '3', '--quiet'];
const KILL_BEFORE_RENAME = join(ROOT, 'test', 'fixtures', 'kill-before-rename.ts');
const METRICS = ['trainLoss', 'trainAccuracy', 'valLoss', 'valAccuracy'] as const;

interface Manifest {
  /** By part ('model.safetensors'); `file`, where given, is the name on disk. */
  files: Record<string, { bytes: number; sha256: string; file?: string }>;
}
interface CheckpointState {
  epoch: number;
  history: Record<string, number>[];
  checkpoint: Manifest;
}
interface Run {
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill: () => void;
  isRunning: () => boolean;
}

let dir: string;
let data: string;

/** `wgsl-nn train` in a child process; `killBeforeRename` n: it kills itself before its nth rename into <out>/checkpoint. */
function train(out: string, resume: boolean, options: { epochs?: number; killBeforeRename?: number } = {}): Run {
  const preload = options.killBeforeRename ? ['--import', KILL_BEFORE_RENAME] : [];
  const args = ['train', '--data', data, '--out', out, '--epochs', String(options.epochs ?? EPOCHS), ...TRAIN, ...(resume ? ['--resume'] : [])];
  const child = spawn(process.execPath, ['--import', 'tsx', ...preload, join(ROOT, 'src', 'cli.ts'), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, WGSL_NN_KILL_DIR: join(out, 'checkpoint'), WGSL_NN_KILL_AT_RENAME: String(options.killBeforeRename ?? 0) },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => (stderr += s));
  let running = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      running = false;
      resolve({ code, signal });
    }),
  );
  return { stderr: () => stderr, exited, kill: () => child.kill('SIGKILL'), isRunning: () => running };
}

const stateFile = (out: string) => join(out, 'checkpoint', 'state.json');

function readState(out: string): CheckpointState | null {
  return existsSync(stateFile(out)) ? (JSON.parse(readFileSync(stateFile(out), 'utf8')) as CheckpointState) : null;
}

/** Parts of the checkpoint in `ckdir` whose file does not match what its state.json records (empty: complete). */
function tornFiles(ckdir: string): string[] {
  const manifest = (JSON.parse(readFileSync(join(ckdir, 'state.json'), 'utf8')) as CheckpointState).checkpoint;
  return Object.entries(manifest.files)
    .filter(([file, rec]) => {
      const path = join(ckdir, rec.file ?? file);
      if (!existsSync(path)) return true;
      const bytes = readFileSync(path);
      return bytes.length !== rec.bytes || createHash('sha256').update(bytes).digest('hex') !== rec.sha256;
    })
    .map(([file]) => file);
}

/** Epochs whose summary line ('epoch k/N: ...') a run printed; each is printed after its checkpoint is saved. */
const printedEpochs = (stderr: string) => [...stderr.matchAll(/^epoch (\d+)\/\d+:/gm)].map((m) => Number(m[1]));

async function waitUntil(what: string, run: Run, condition: () => boolean): Promise<void> {
  while (!condition()) {
    if (!run.isRunning()) throw new Error(`training exited before ${what}:\n${run.stderr()}`);
    await sleep(15);
  }
}

function historyOf(modelDir: string): Record<string, number>[] {
  return JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8')).training.history;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-crash-'));
  data = join(dir, 'data');
  await generateSynthetic({ outDir: data, perClass: 12, size: 24, seed: 5 });
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// A hang guard, not a speed check: several CLI trainings in child processes on a loaded 2-core machine.
describe('crash-safe training', { timeout: 600_000 }, () => {
  it(`survives ${KILLS} SIGKILLs at random moments: resumes from the last complete checkpoint and ends as an uninterrupted run`, async () => {
    const out = join(dir, 'killed');
    const reference = train(join(dir, 'uninterrupted'), false); // runs alongside, never killed
    const rng = new Rng(90210);
    const epochOf = () => readState(out)?.epoch ?? 0;
    let checkpointEpoch = 0;
    let epochMs = 0;
    const kills: string[] = [];
    for (let k = 0; k < KILLS; k++) {
      const run = train(out, k > 0);
      // A kill only after this run has saved a checkpoint of its own: every round makes progress.
      await waitUntil(`checkpoint ${checkpointEpoch + 1}`, run, () => epochOf() > checkpointEpoch);
      if (k === 0) {
        // Time one epoch (training, validation, saves), so that the kills spread over epochs on any machine.
        const [t0, e0] = [performance.now(), epochOf()];
        await waitUntil(`checkpoint ${e0 + 1}`, run, () => epochOf() > e0);
        epochMs = performance.now() - t0;
      }
      const delay = Math.round(rng.uniform(0, MAX_DELAY_EPOCHS) * epochMs);
      await sleep(delay);
      expect(run.isRunning(), `round ${k}: training finished within the delay; raise EPOCHS`).toBe(true);
      run.kill();
      expect((await run.exited).signal).toBe('SIGKILL');

      const stderr = run.stderr();
      if (k > 0) expect(stderr, `round ${k}`).toMatch(new RegExp(`^resumed from epoch ${checkpointEpoch} `, 'm'));
      const printed = printedEpochs(stderr);
      if (printed.length) expect(printed[0], `round ${k}: the first epoch after resuming`).toBe(checkpointEpoch + 1);
      // The checkpoint left behind is complete, and it is the last epoch finished or the one after it
      // (killed after saving but before printing): at most the epoch in progress is lost.
      expect(tornFiles(join(out, 'checkpoint')), `round ${k}: checkpoint files not matching state.json after a kill ${delay} ms after a checkpoint`).toEqual([]);
      const state = readState(out)!;
      const lastPrinted = printed.at(-1) ?? checkpointEpoch;
      expect(state.epoch).toBeGreaterThanOrEqual(lastPrinted);
      expect(state.epoch).toBeLessThanOrEqual(lastPrinted + 1);
      expect(state.history.map((h) => h.epoch)).toEqual(Array.from({ length: state.epoch }, (_, i) => i + 1));
      cpSync(join(out, 'checkpoint'), join(dir, `checkpoint-after-kill-${k}`), { recursive: true });
      kills.push(`kill ${k + 1}: ${delay} ms (${(delay / epochMs).toFixed(2)} epoch) after a checkpoint, left checkpoint ${state.epoch}`);
      checkpointEpoch = state.epoch;
    }

    const last = train(out, true);
    const done = await last.exited;
    expect(done, last.stderr()).toEqual({ code: 0, signal: null });
    expect(last.stderr()).toMatch(new RegExp(`^resumed from epoch ${checkpointEpoch} `, 'm'));
    console.log(`[crash-resume] ${kills.join('; ')}; then finished epochs ${checkpointEpoch + 1}-${EPOCHS}`);

    // The model directory loads and has every epoch once, in order.
    const meta = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
    expect(meta.training.epochs).toBe(EPOCHS);
    const history = historyOf(out);
    expect(history.map((h) => h.epoch)).toEqual(Array.from({ length: EPOCHS }, (_, i) => i + 1));
    const insp = await Inspector.load(out);
    try {
      const r = await insp.inspect(join(data, 'crack', readdirSync(join(data, 'crack')).sort()[0]));
      const scores = Object.values(r.scores);
      expect(scores.every(Number.isFinite)).toBe(true);
      expect(Math.abs(scores.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-5);
    } finally {
      insp.dispose();
    }

    // Resuming continued the same run: the losses and accuracies of every epoch equal the uninterrupted
    // run's (same seeds per epoch, same optimizer state), up to float rounding.
    expect(await reference.exited).toEqual({ code: 0, signal: null });
    const want = historyOf(join(dir, 'uninterrupted'));
    for (let e = 0; e < EPOCHS; e++)
      for (const m of METRICS) expect(Math.abs(history[e][m] - want[e][m]), `epoch ${e + 1} ${m}: ${history[e][m]} vs ${want[e][m]}`).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(want[e][m])));
  });

  // A save writes its files one by one, each atomically (temporary file, fsync, rename). Renames 1 to 3
  // into the checkpoint directory belong to the save of epoch 1 in the current layout (model, optimizer,
  // state.json), 4 to 6 to epoch 2: a kill before rename 5 or 6 stops the second save between files.
  it.each([5, 6])('a kill just before rename %i into the checkpoint directory (mid-save) leaves a checkpoint that resumes', async (n) => {
    const out = join(dir, `kill-before-rename-${n}`);
    const killed = train(out, false, { epochs: 2, killBeforeRename: n });
    expect((await killed.exited).signal, killed.stderr()).toBe('SIGKILL');
    const state = readState(out);
    expect(state, 'a checkpoint was committed before the kill').not.toBeNull();
    expect(tornFiles(join(out, 'checkpoint')), 'checkpoint files not matching state.json').toEqual([]);
    const resumed = train(out, true, { epochs: 2 });
    const done = await resumed.exited;
    // Losing the epoch in progress is acceptable; losing the run ("start without resuming") is not.
    expect(done, resumed.stderr()).toEqual({ code: 0, signal: null });
    expect(resumed.stderr()).toMatch(new RegExp(`^resumed from epoch ${state!.epoch} `, 'm'));
    expect(historyOf(out).map((h) => h.epoch)).toEqual([1, 2]);
  });
});
