// Weights in safetensors, with PyTorch's parameter names and layouts, so a file written here loads into
// the equivalent torch.nn model with load_state_dict (after safetensors.torch.load_file) and back.
//
// Format: 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}} with
// an optional "__metadata__" map of strings, then the raw little-endian tensor bytes. (A few dozen
// lines; the npm packages for it are unmaintained, so it is written here.)
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { WgslNnError } from '../gpu/errors.js';
import type { Module, StateDict, StateEntry } from './modules.js';
import { halfToFloat } from './half.js';

export class SafetensorsError extends WgslNnError {}

const DTYPE_BYTES: Record<string, number> = { F32: 4, I64: 8, F64: 8, F16: 2, I32: 4 };

/** Writes `path` atomically: a temporary file in the same folder, fsync, then rename over the target. */
export function writeFileAtomic(path: string, chunks: Uint8Array[]): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    for (const c of chunks) writeSync(fd, c);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function encodeSafetensors(tensors: StateDict, metadata: Record<string, string> = {}): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const bodies: Uint8Array[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    offset += bytes.byteLength;
    bodies.push(bytes);
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8); // the format pads the header to 8 bytes
  const headerBytes = new TextEncoder().encode(json);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  return [len, headerBytes, ...bodies];
}

export function writeSafetensors(path: string, tensors: StateDict, metadata?: Record<string, string>): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export function decodeSafetensors(bytes: Uint8Array, name = 'safetensors data'): { tensors: StateDict; metadata: Record<string, string> } {
  if (bytes.byteLength < 8) throw new SafetensorsError(`${name}: too short to be a safetensors file (${bytes.byteLength} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen <= 0 || 8 + headerLen > bytes.byteLength)
    throw new SafetensorsError(`${name}: corrupt header length ${headerLen} (file has ${bytes.byteLength} bytes)`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    throw new SafetensorsError(`${name}: corrupt header (${(e as Error).message})`);
  }
  const dataStart = 8 + headerLen;
  const tensors: StateDict = {};
  let metadata: Record<string, string> = {};
  for (const [key, info] of Object.entries(header)) {
    if (key === '__metadata__') {
      metadata = info as Record<string, string>;
      continue;
    }
    const { dtype, shape, data_offsets } = info as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const width = DTYPE_BYTES[dtype];
    if (!width) throw new SafetensorsError(`${name}: tensor '${key}' has unsupported dtype ${dtype}`);
    const count = shape.reduce((a, b) => a * b, 1);
    const [begin, end] = data_offsets;
    if (end - begin !== count * width || dataStart + end > bytes.byteLength)
      throw new SafetensorsError(`${name}: tensor '${key}' data is truncated or inconsistent with shape [${shape}]`);
    // A copy (Buffer.slice would be a view into Node's pool), so the typed arrays are aligned and owned.
    const raw = new Uint8Array(end - begin);
    raw.set(bytes.subarray(dataStart + begin, dataStart + end));
    const dv = new DataView(raw.buffer);
    let entry: StateEntry;
    if (dtype === 'F32') entry = { shape, dtype: 'F32', data: new Float32Array(raw.buffer) };
    else if (dtype === 'I64') entry = { shape, dtype: 'I64', data: new BigInt64Array(raw.buffer) };
    else {
      const f = new Float32Array(count);
      for (let i = 0; i < count; i++)
        f[i] = dtype === 'F64' ? dv.getFloat64(i * 8, true) : dtype === 'I32' ? dv.getInt32(i * 4, true) : halfToFloat(dv.getUint16(i * 2, true));
      entry = { shape, dtype: 'F32', data: f };
    }
    tensors[key] = entry;
  }
  return { tensors, metadata };
}

export function readSafetensors(path: string): { tensors: StateDict; metadata: Record<string, string> } {
  if (!existsSync(path)) throw new SafetensorsError(`weights file not found: ${path}`);
  return decodeSafetensors(readFileSync(path), path);
}

/** Saves a module's state dict (PyTorch names) to a safetensors file, atomically. */
export async function save(module: Module, path: string, metadata?: Record<string, string>): Promise<void> {
  writeSafetensors(path, await module.stateDict(), metadata);
}

/** Loads a safetensors state dict into a module (strict: every name must match). */
export function load(module: Module, path: string, strict = true): Record<string, string> {
  const { tensors, metadata } = readSafetensors(path);
  module.loadStateDict(tensors, strict);
  return metadata;
}
