// Training checkpoints: a directory holding
//   <module>.<hash>.safetensors        each named module's state dict (PyTorch names)
//   <optimizer>.optim.<hash>.safetensors  each named optimizer's buffers (moments, momentum), keyed '<param index>.<buffer>'
//   state.json                  the caller's JSON state (epoch, best, history, ...) at the top level, and under
//                               "checkpoint": the format, the run's options, the optimizers' hyperparameters and
//                               the file name, byte length and SHA-256 of every file above
// <hash> is the first 16 hex digits of the file's SHA-256, so a save never overwrites a file that the
// current state.json names. Every file is written atomically (temporary file, fsync, rename), state.json
// last, and the previous save's files are removed only after that: a process killed at any moment leaves
// a state.json that describes complete files (the old checkpoint or the new one). Loading still checks
// lengths and hashes before touching any module, and reports a damaged file.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { WgslNnError } from '../gpu/errors.js';
import type { Module } from '../nn/modules.js';
import type { Optimizer, OptimizerState } from '../nn/optim.js';
import { decodeSafetensors, encodeSafetensors, writeFileAtomic } from '../nn/serialize.js';

export const CHECKPOINT_FORMAT = 'wgsl-nn-checkpoint/1';
const STATE_FILE = 'state.json';

export class CheckpointError extends WgslNnError {}

/** The checkpoint was made with other options than the run that wants to resume from it. */
export class CheckpointMismatchError extends CheckpointError {
  constructor(
    message: string,
    /** Names of the options that differ. */
    readonly differences: string[],
  ) {
    super(message);
  }
}

export interface CheckpointParts {
  /** Modules by name (letters, digits, '_' and '-'); each is saved as <name>.safetensors. */
  modules: Record<string, Module>;
  /** Optimizers by name; each is saved as <name>.optim.safetensors plus its hyperparameters in state.json. */
  optimizers?: Record<string, Optimizer>;
  /**
   * What must be equal for a resumed run to continue the same run (data, seed, batch size, architecture, ...),
   * as JSON values. Compared key by key on load; a difference is a CheckpointMismatchError naming the keys.
   */
  options: Record<string, unknown>;
}

interface FileRecord {
  bytes: number;
  sha256: string;
  /** The file on disk: '<part>.<first 16 hex of sha256>.safetensors' (absent in checkpoints that stored '<part>' itself). */
  file?: string;
}

interface Manifest {
  format: string;
  options: Record<string, unknown>;
  files: Record<string, FileRecord>;
  optimizers: Record<string, Omit<OptimizerState, 'buffers'>>;
}

const NAME = /^[A-Za-z0-9_-]+$/;

function checkNames(kind: string, names: string[]): void {
  for (const n of names) if (!NAME.test(n)) throw new CheckpointError(`checkpoint ${kind} name '${n}' must use only letters, digits, '_' and '-'`);
}

const moduleFile = (name: string) => `${name}.safetensors`;
const optimizerFile = (name: string) => `${name}.optim.safetensors`;

/** The options as stored: plain JSON (undefined fields dropped). */
function normalise(options: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(JSON.stringify(options)) as Record<string, unknown>;
}

/** JSON with sorted object keys, so that key order does not make two equal values differ. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'undefined';
}

function writeRecorded(dir: string, file: string, chunks: Uint8Array[], files: Record<string, FileRecord>): void {
  const hash = createHash('sha256');
  let bytes = 0;
  for (const c of chunks) {
    hash.update(c);
    bytes += c.byteLength;
  }
  const sha256 = hash.digest('hex');
  // A content-addressed name: a save never overwrites a file the current state.json names, so a kill
  // between the renames of one save leaves the previous checkpoint whole.
  const stored = file.replace(/\.safetensors$/, `.${sha256.slice(0, 16)}.safetensors`);
  writeFileAtomic(join(dir, stored), chunks);
  files[file] = { bytes, sha256, file: stored };
}

/**
 * Saves modules, optimizers and the caller's JSON `state` (its keys go to the top level of state.json; `checkpoint`
 * is reserved). Everything is read back from the GPU before the first file is written.
 */
export async function saveCheckpoint(dir: string, parts: CheckpointParts, state: Record<string, unknown>): Promise<void> {
  if ('checkpoint' in state) throw new CheckpointError("checkpoint state must not have a key named 'checkpoint' (it holds the manifest)");
  const optimizers = parts.optimizers ?? {};
  checkNames('module', Object.keys(parts.modules));
  checkNames('optimizer', Object.keys(optimizers));
  const moduleStates = await Promise.all(Object.entries(parts.modules).map(async ([name, m]) => [name, await m.stateDict()] as const));
  const optimizerStates = await Promise.all(Object.entries(optimizers).map(async ([name, o]) => [name, await o.stateDict()] as const));

  mkdirSync(dir, { recursive: true });
  const files: Record<string, FileRecord> = {};
  for (const [name, sd] of moduleStates) writeRecorded(dir, moduleFile(name), encodeSafetensors(sd), files);
  const optimizerMeta: Manifest['optimizers'] = {};
  for (const [name, { buffers, ...meta }] of optimizerStates) {
    writeRecorded(dir, optimizerFile(name), encodeSafetensors(buffers), files);
    optimizerMeta[name] = meta;
  }
  const manifest: Manifest = { format: CHECKPOINT_FORMAT, options: normalise(parts.options), files, optimizers: optimizerMeta };
  // state.json last: the checkpoint is complete once it names the files above.
  writeFileAtomic(join(dir, STATE_FILE), [new TextEncoder().encode(JSON.stringify({ ...state, checkpoint: manifest }))]);
  syncDirectory(dir);
  // Only now that state.json names the new files: remove the previous save's files and stray temporaries.
  const keep = new Set(Object.values(files).map((f) => f.file));
  for (const f of readdirSync(dir))
    if ((f.endsWith('.safetensors') && !keep.has(f)) || (f.startsWith('.') && f.endsWith('.tmp'))) {
      try {
        unlinkSync(join(dir, f));
      } catch {
        /* already gone */
      }
    }
}

/** Makes the renames above durable (a no-op where directories cannot be opened for fsync). */
function syncDirectory(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    /* not supported on this platform */
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The path of a checkpoint part (e.g. 'model.safetensors') as the current state.json names it. */
export function checkpointPartPath(dir: string, part: string): string {
  const manifest = (JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as { checkpoint?: Manifest }).checkpoint;
  const record = manifest?.files[part];
  if (!record) throw new CheckpointError(`the checkpoint in ${dir} has no part '${part}'`);
  return join(dir, record.file ?? part);
}

/** Whether `dir` holds a checkpoint (its state.json). */
export function checkpointExists(dir: string): boolean {
  return existsSync(join(dir, STATE_FILE));
}

/** The options that differ between a checkpoint and the current run, as 'name: A in the checkpoint, B now'. */
function optionDifferences(saved: Record<string, unknown>, now: Record<string, unknown>): { names: string[]; text: string[] } {
  const names = [...new Set([...Object.keys(saved), ...Object.keys(now)])].filter((k) => canonical(saved[k]) !== canonical(now[k]));
  const show = (v: unknown) => (v === undefined ? 'unset' : canonical(v));
  return { names, text: names.map((k) => `${k}: ${show(saved[k])} in the checkpoint, ${show(now[k])} now`) };
}

/**
 * Reads the checkpoint in `dir`: checks its format and the run's options, verifies every file's length and hash,
 * then loads the modules' and optimizers' states (nothing is loaded unless everything checks out).
 * Returns the caller's JSON state saved with it.
 */
export function loadCheckpoint<S extends Record<string, unknown>>(dir: string, parts: CheckpointParts): S {
  const path = join(dir, STATE_FILE);
  if (!existsSync(path)) throw new CheckpointError(`no checkpoint in ${dir} (no ${STATE_FILE})`);
  let saved: Record<string, unknown> & { checkpoint?: Manifest };
  try {
    saved = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`corrupt checkpoint ${path}: ${(e as Error).message}`);
  }
  const { checkpoint: manifest, ...state } = saved;
  if (!manifest || manifest.format !== CHECKPOINT_FORMAT)
    throw new CheckpointError(
      `${path} is not a ${CHECKPOINT_FORMAT} checkpoint (format ${manifest?.format ?? 'missing'}; an older version wrote it?): start without resuming`,
    );

  const diff = optionDifferences(manifest.options, normalise(parts.options));
  if (diff.names.length)
    throw new CheckpointMismatchError(`cannot resume from the checkpoint in ${dir}: it was made with other options (${diff.text.join('; ')})`, diff.names);

  const optimizers = parts.optimizers ?? {};
  const expected = [...Object.keys(parts.modules).map(moduleFile), ...Object.keys(optimizers).map(optimizerFile)];
  const missing = expected.filter((f) => !manifest.files[f]);
  const unexpected = Object.keys(manifest.files).filter((f) => !expected.includes(f));
  if (missing.length || unexpected.length)
    throw new CheckpointError(
      `the checkpoint in ${dir} holds other parts than this run: ${[missing.length ? `missing ${missing.join(', ')}` : '', unexpected.length ? `unexpected ${unexpected.join(', ')}` : ''].filter(Boolean).join('; ')}`,
    );

  const decoded = new Map<string, ReturnType<typeof decodeSafetensors>>();
  for (const file of expected) {
    const stored = manifest.files[file].file ?? file;
    decoded.set(file, decodeSafetensors(readVerified(dir, stored, manifest.files[file]), join(dir, stored)));
  }

  for (const [name, m] of Object.entries(parts.modules)) m.loadStateDict(decoded.get(moduleFile(name))!.tensors);
  for (const [name, o] of Object.entries(optimizers))
    o.loadStateDict({ ...manifest.optimizers[name], buffers: decoded.get(optimizerFile(name))!.tensors });
  return state as S;
}

function readVerified(dir: string, file: string, record: FileRecord): Uint8Array {
  const path = join(dir, file);
  const hint = 'the checkpoint is incomplete or corrupt (a save interrupted part-way?); start without resuming';
  if (!existsSync(path)) throw new CheckpointError(`${path} is missing: ${hint}`);
  const bytes = readFileSync(path);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (bytes.byteLength !== record.bytes || sha256 !== record.sha256)
    throw new CheckpointError(
      `${path} does not match ${STATE_FILE} (${bytes.byteLength} bytes, sha256 ${sha256.slice(0, 12)}; recorded ${record.bytes} bytes, sha256 ${record.sha256.slice(0, 12)}): ${hint}`,
    );
  return bytes;
}
