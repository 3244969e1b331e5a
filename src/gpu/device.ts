// One WebGPU adapter and device: creation, the limits kernels plan with, the adapter's description,
// and device loss (state and listeners).
//
// dawn.node's classes (GPUValidationError, ...) and flag namespaces (GPUBufferUsage, GPUMapMode) are
// not globals in Node. They are read from the 'webgpu' package's `globals` object or written as
// numbers (usage.ts); nothing here assigns to globalThis, so importing wgsl-nn leaves it untouched.
import { create } from 'webgpu';
import { describeValue } from './describe.js';
import { DeviceLostError, InvalidArgumentError, NoAdapterError } from './errors.js';

export interface DeviceOptions {
  powerPreference?: 'low-power' | 'high-performance';
  /** Ask for the fallback (software) adapter. */
  forceFallbackAdapter?: boolean;
  /** Extra dawn.node flags, e.g. ['backend=vulkan']. */
  dawnFlags?: string[];
  /**
   * Request the 'subgroups' feature when the adapter offers it (default true). The GEMM kernels'
   * subgroup variants use it (1.3-2x faster on lavapipe) and fall back to plain code without it.
   */
  subgroups?: boolean;
  /**
   * Bind at most this many bytes per storage binding (default: the device's maxStorageBufferBindingSize;
   * a larger value is capped to it). For tests: with a small value the kernels' batch-splitting paths
   * (src/kernels/batch-split.ts) run on small tensors. A positive multiple of 4.
   */
  maxBindingBytes?: number;
  /**
   * Offset alignment of storage-buffer ranges (default: the device's minStorageBufferOffsetAlignment; a
   * smaller value is raised to it). For tests: 256, the usual hardware value, on an adapter that allows less.
   */
  bindingOffsetAlignment?: number;
}

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  backend: string;
  /** True for CPU implementations (lavapipe/llvmpipe, SwiftShader, WARP). */
  software: boolean;
}

/** The limits kernels plan with (the device's, narrowed by maxBindingBytes / bindingOffsetAlignment). */
export interface DeviceLimits {
  maxStorageBufferBindingSize: number;
  /** Storage ranges bound at an offset (batch-split kernels) start at a multiple of this. */
  minStorageBufferOffsetAlignment: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
}

export class DeviceContext {
  /** The device's uniform-buffer offset alignment (not narrowed by options). */
  readonly minUniformBufferOffsetAlignment: number;
  private destroyed = false;
  private lostError: DeviceLostError | undefined;
  private readonly lostListeners = new Set<(error: DeviceLostError) => void>();

  private constructor(
    /** The dawn.node GPU instance. Held so it is not garbage-collected while the device lives (that aborts the process). */
    readonly gpu: GPU,
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    readonly info: AdapterDescription,
    readonly limits: DeviceLimits,
  ) {
    this.minUniformBufferOffsetAlignment = device.limits.minUniformBufferOffsetAlignment;
    void device.lost.then((i) => {
      if (i.reason === 'destroyed' && this.destroyed) return;
      this.lostError = new DeviceLostError(`GPU device lost (${i.reason}): ${i.message}`);
      for (const listener of [...this.lostListeners]) this.notifyLost(listener, this.lostError);
    });
  }

  /** Finds an adapter and requests a device with the adapter's own limits. */
  static async open(options: DeviceOptions = {}): Promise<DeviceContext> {
    const gpu = create(options.dawnFlags ?? []);
    let adapter: GPUAdapter | null;
    try {
      adapter = await gpu.requestAdapter({
        powerPreference: options.powerPreference,
        forceFallbackAdapter: options.forceFallbackAdapter,
      });
    } catch (e) {
      // dawn.node throws (rather than returning null) when no backend or no matching adapter exists.
      throw new NoAdapterError(String((e as Error).message ?? e).split('\n')[0]);
    }
    if (!adapter) throw new NoAdapterError('navigator.gpu.requestAdapter() returned null');
    const a = adapter.limits;
    // Ask explicitly for what the adapter offers; the defaults (128 MiB bindings, 16 KiB workgroup
    // storage, 256 invocations) would silently cap kernels on bigger hardware.
    const requiredFeatures: GPUFeatureName[] = options.subgroups !== false && adapter.features.has('subgroups') ? ['subgroups'] : [];
    const device = await adapter.requestDevice({
      requiredFeatures,
      requiredLimits: {
        maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
        maxBufferSize: a.maxBufferSize,
        maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
        maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
        maxComputeWorkgroupSizeY: a.maxComputeWorkgroupSizeY,
        maxComputeWorkgroupSizeZ: a.maxComputeWorkgroupSizeZ,
        maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
      },
      label: 'wgsl-nn',
    });
    let limits: DeviceLimits;
    try {
      limits = effectiveLimits(device.limits, options);
    } catch (e) {
      device.destroy();
      throw e;
    }
    return new DeviceContext(gpu, adapter, device, describeAdapterInfo(adapter.info), limits);
  }

  /** One line describing the adapter, e.g. for logs. */
  describe(): string {
    const i = this.info;
    return `${i.vendor || '?'} ${i.architecture || ''} ${i.device || ''} (${i.backend}${i.software ? ', software' : ''}) ${i.description}`
      .replace(/\s+/g, ' ')
      .trim();
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /** The loss, once the device was lost other than by destroy(). */
  get lost(): DeviceLostError | undefined {
    return this.lostError;
  }

  /** Throws DeviceLostError after destroy() or a device loss. */
  assertAlive(): void {
    if (this.destroyed) throw new DeviceLostError('wgsl-nn: the engine was destroyed');
    if (this.lostError) throw this.lostError;
  }

  /**
   * Calls `listener` once when the device is lost other than by destroy(); at once (in a microtask) if
   * it already was. Returns a function that removes the listener.
   */
  onLost(listener: (error: DeviceLostError) => void): () => void {
    if (this.lostError) {
      const lost = this.lostError;
      queueMicrotask(() => this.notifyLost(listener, lost));
      return () => {};
    }
    this.lostListeners.add(listener);
    return () => this.lostListeners.delete(listener);
  }

  private notifyLost(listener: (error: DeviceLostError) => void, error: DeviceLostError): void {
    this.lostListeners.delete(listener);
    try {
      listener(error);
    } catch (e) {
      console.error('wgsl-nn: an onLost listener threw:', e); // one bad listener must not hide the loss from the others
    }
  }

  /** Destroys the device; the resulting 'destroyed' loss is not reported to the listeners. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.device.destroy();
  }
}

/** The device's limits narrowed by the test options (validated here). */
function effectiveLimits(l: GPUSupportedLimits, options: DeviceOptions): DeviceLimits {
  const bindingCap = options.maxBindingBytes ?? l.maxStorageBufferBindingSize;
  if (!(Number.isInteger(bindingCap) && bindingCap > 0 && bindingCap % 4 === 0))
    throw new InvalidArgumentError(`maxBindingBytes must be a positive multiple of 4, got ${describeValue(options.maxBindingBytes)}`);
  const alignment = Math.max(l.minStorageBufferOffsetAlignment, options.bindingOffsetAlignment ?? 0);
  if (!Number.isInteger(Math.log2(alignment)))
    throw new InvalidArgumentError(`bindingOffsetAlignment must be a power of 2, got ${describeValue(options.bindingOffsetAlignment)}`);
  return {
    maxStorageBufferBindingSize: Math.min(l.maxStorageBufferBindingSize, bindingCap),
    minStorageBufferOffsetAlignment: alignment,
    maxBufferSize: l.maxBufferSize,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
  };
}

function describeAdapterInfo(i: GPUAdapterInfo): AdapterDescription {
  const text = `${i.vendor} ${i.architecture} ${i.device} ${i.description}`;
  return {
    vendor: i.vendor,
    architecture: i.architecture,
    device: i.device,
    description: i.description,
    backend: /vulkan/i.test(text) || process.platform === 'linux' ? 'vulkan' : process.platform === 'darwin' ? 'metal' : 'd3d12',
    software:
      Boolean((i as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter) ||
      /llvmpipe|lavapipe|swiftshader|warp|software/i.test(text),
  };
}
