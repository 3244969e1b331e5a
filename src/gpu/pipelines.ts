// Shader modules and compute pipelines: one module per shader name, one pipeline per shader, entry
// point and `override` constants, and the check that turns WGSL compiler messages into
// ShaderCompileError (reported at the next flush point, see recorder.ts).
import { ShaderCompileError } from './errors.js';
import { loadShader, type ShaderSource } from './shaders.js';

export type OverrideConstants = Record<string, number | boolean>;

export class PipelineCache {
  private readonly modules = new Map<string, { module: GPUShaderModule; source: ShaderSource }>();
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly customShaders = new Map<string, string>();
  private readonly pendingCompileChecks: Promise<void>[] = [];

  constructor(private readonly device: GPUDevice) {}

  /** Registers WGSL source under a name usable as a shader name (for experiments and tests). */
  registerShader(name: string, code: string): void {
    this.customShaders.set(name, code);
    this.modules.delete(name);
    for (const key of [...this.pipelines.keys()]) if (key.startsWith(`${name}|`)) this.pipelines.delete(key);
  }

  /** The cached pipeline for a shader, entry point and override constants. */
  pipeline(shader: string, entry = 'main', constants: OverrideConstants = {}): GPUComputePipeline {
    const keys = Object.keys(constants).sort();
    const key = `${shader}|${entry}|${keys.map((k) => `${k}=${Number(constants[k])}`).join(',')}`;
    let p = this.pipelines.get(key);
    if (!p) {
      const consts: Record<string, number> = {};
      for (const k of keys) consts[k] = Number(constants[k]);
      p = this.device.createComputePipeline({
        layout: 'auto',
        compute: { module: this.module(shader), entryPoint: entry, constants: consts },
        label: key,
      });
      this.pipelines.set(key, p);
    }
    return p;
  }

  get size(): number {
    return this.pipelines.size;
  }

  /** Throws the first ShaderCompileError among the modules created since the last call, if any. */
  async throwCompileErrors(): Promise<void> {
    while (this.pendingCompileChecks.length) {
      const checks = this.pendingCompileChecks.splice(0);
      const results = await Promise.allSettled(checks);
      const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
      if (failed) throw failed.reason;
    }
  }

  clear(): void {
    this.pipelines.clear();
    this.modules.clear();
  }

  private module(name: string): GPUShaderModule {
    let m = this.modules.get(name);
    if (!m) {
      const custom = this.customShaders.get(name);
      const source: ShaderSource = custom !== undefined ? { code: custom, preludeLines: 0 } : loadShader(name);
      const module = this.device.createShaderModule({ code: source.code, label: name });
      m = { module, source };
      this.modules.set(name, m);
      this.pendingCompileChecks.push(checkCompilation(name, module, source));
    }
    return m.module;
  }
}

async function checkCompilation(name: string, module: GPUShaderModule, source: ShaderSource): Promise<void> {
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length === 0) return;
  const own = source.code.split('\n').slice(source.preludeLines).join('\n');
  throw new ShaderCompileError(
    name,
    errors.map((m) => ({
      type: m.type,
      message: m.message,
      lineNum: m.lineNum - source.preludeLines,
      linePos: m.linePos,
    })),
    own,
  );
}
