// Errors raised by the GPU runtime. Each one names what went wrong and, where it helps, what to do.

export class WgslNnError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** requestAdapter() returned null: there is no WebGPU driver on this machine. */
export class NoAdapterError extends WgslNnError {
  constructor(detail = '') {
    super(
      'No WebGPU adapter found' + (detail ? ` (${detail})` : '') + '. ' +
        'On a Linux machine without a GPU, install the software Vulkan driver once with ' +
        '`npm run install-software-gpu` (runs scripts/install-software-gpu.sh; needs root), then retry.',
    );
  }
}

/** A WGSL shader failed to compile. Carries the compiler's messages and the offending source lines. */
export class ShaderCompileError extends WgslNnError {
  constructor(
    readonly shader: string,
    readonly messages: { type: string; message: string; lineNum: number; linePos: number }[],
    source: string,
  ) {
    const lines = source.split('\n');
    const text = messages
      .map((m) => {
        const line = lines[m.lineNum - 1] ?? '';
        const caret = ' '.repeat(Math.max(0, m.linePos - 1)) + '^';
        return `  ${shader}.wgsl:${m.lineNum}:${m.linePos} ${m.type}: ${m.message}\n    ${line}\n    ${caret}`;
      })
      .join('\n');
    super(`WGSL compile error in shader '${shader}':\n${text}`);
  }
}

/** A WebGPU validation or out-of-memory error, with the context (kernel, shapes) in which it happened. */
export class GpuError extends WgslNnError {
  constructor(
    readonly kind: 'validation' | 'out-of-memory' | 'internal',
    message: string,
    readonly context: string,
  ) {
    super(`GPU ${kind} error${context ? ` in ${context}` : ''}: ${message}`);
  }
}

/** The device was lost (driver reset, or used after engine.destroy()). */
export class DeviceLostError extends WgslNnError {}

/** A tensor does not fit the device's limits (one storage binding, one buffer). */
export class TensorTooLargeError extends WgslNnError {}

/** Inputs whose shapes do not fit an op. */
export class ShapeError extends WgslNnError {}

/**
 * An argument an op or a tensor factory cannot take, found before anything runs on the GPU: host data
 * that are not numbers, values an i32 tensor cannot hold, an unknown dtype, class labels out of range,
 * a tensor of another engine.
 */
export class InvalidArgumentError extends WgslNnError {}
