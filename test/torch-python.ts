// PyTorch checks from tests: whether /usr/bin/python3 has torch (Debian's python3-torch), and running a
// script there with a safetensors reader already defined (the safetensors package need not be installed).
import { execFileSync } from 'node:child_process';

let available: boolean | undefined;

/** Whether /usr/bin/python3 imports torch (checked once). */
export function torchAvailable(): boolean {
  if (available === undefined) {
    try {
      execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore', timeout: 120_000 });
      available = true;
    } catch {
      available = false;
    }
  }
  return available;
}

/** `read_safetensors(path)`: the file's tensors as float64 (I64 entries stay int64), by name. */
const PRELUDE = `
import json, struct, sys, torch
from torch import nn
def read_safetensors(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    state = {}
    for k, info in header.items():
        if k == '__metadata__': continue
        a, b = info['data_offsets']
        dtype = torch.int64 if info['dtype'] == 'I64' else torch.float32
        t = torch.frombuffer(bytearray(raw[8 + n + a:8 + n + b]), dtype=dtype).reshape(info['shape'])
        state[k] = t if dtype == torch.int64 else t.double()
    return state
`;

/** Runs `script` (after the prelude: json, sys, torch, nn, read_safetensors) with `args` as sys.argv[1:]; parses its stdout as JSON. */
export function runTorchJson<T>(script: string, args: string[]): T {
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', PRELUDE + script, ...args], { encoding: 'utf8', timeout: 120_000 })) as T;
}
