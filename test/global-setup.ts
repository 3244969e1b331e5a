// Runs once before the test files: without a WebGPU adapter the whole run fails here with the
// install hint (never a silent skip of the GPU tests).
import { Engine } from '../src/gpu/engine.js';

export default async function setup(): Promise<void> {
  const engine = await Engine.create();
  console.log(`[wgsl-nn tests] adapter: ${engine.describe()}`);
  engine.destroy();
}
