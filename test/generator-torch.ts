// A DCGAN generator of this project against the torch module a test describes: a few training forwards
// (so BatchNorm's running statistics are not the initial 0 / 1), the eval forward of three class-conditional
// noise rows, the weights saved, and the torch script run on them (loading with strict=True); the outputs must
// agree to 1e-4. The script gets the safetensors path and the noise rows (JSON) as sys.argv[1:3] and prints
// its output as a JSON list.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Engine } from '../src/gpu/engine.js';
import { latentBatch, type Generator } from '../src/gan/models.js';
import { save } from '../src/nn/index.js';
import { Rng } from '../src/util/rng.js';
import { expectClose } from './helpers.js';
import { runTorchJson } from './torch-python.js';

export async function expectGeneratorMatchesTorch(G: Generator, engine: Engine, script: string): Promise<void> {
  const config = G.config;
  const noise = new Rng(2);
  for (let i = 0; i < 3; i++) engine.tidy(() => G.forward(engine.tensor(latentBatch(config, [0, 1, 2, 1], () => noise.normal()), [4, G.inputDim])));
  G.eval();
  const z = latentBatch(config, [2, 0, 1], () => noise.normal());
  const y = Float32Array.from(await G.forward(engine.tensor(z, [3, G.inputDim])).toArray());
  const dir = mkdtempSync(join(tmpdir(), 'wgsl-nn-generator-torch-'));
  try {
    const path = join(dir, 'g.safetensors');
    await save(G, path);
    expectClose(y, runTorchJson<number[]>(script, [path, JSON.stringify(Array.from(z))]), 1e-4, 'generator vs torch');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
