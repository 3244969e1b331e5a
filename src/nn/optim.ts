// optim: Adam and SGD as in torch.optim, updating parameters in place on the GPU.
import type { DeviceTensor } from '../gpu/device-tensor.js';
import { kernels } from '../kernels/registry.js';
import type * as opt from '../kernels/optim.js';
import type { Tensor } from './tensor.js';

abstract class Optimizer {
  constructor(readonly params: Tensor[]) {}

  /** Drops the gradients (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  abstract step(): void;

  /** Releases the optimizer's state buffers. */
  abstract dispose(): void;
}

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export class Adam extends Optimizer {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  stepCount = 0;
  private readonly state = new Map<Tensor, { m: DeviceTensor; v: DeviceTensor }>();

  constructor(params: Tensor[], options: AdamOptions = {}) {
    super(params);
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0;
  }

  step(): void {
    this.stepCount++;
    const adam = kernels.get<typeof opt.adamStep>('optim.adam', this.params[0]?.engine);
    for (const p of this.params) {
      if (!p.grad) continue;
      let s = this.state.get(p);
      if (!s) this.state.set(p, (s = { m: p.engine.zeros(p.shape), v: p.engine.zeros(p.shape) }));
      adam(p.value, p.grad.value, s.m, s.v, {
        lr: this.lr,
        beta1: this.betas[0],
        beta2: this.betas[1],
        eps: this.eps,
        weightDecay: this.weightDecay,
        step: this.stepCount,
      });
    }
  }

  /** First and second moment estimates of a parameter (for tests and checkpoints). */
  moments(p: Tensor): { m: DeviceTensor; v: DeviceTensor } | undefined {
    return this.state.get(p);
  }

  /** Restores a parameter's moment estimates (checkpoint resume); takes ownership of m and v. */
  setMoments(p: Tensor, m: DeviceTensor, v: DeviceTensor): void {
    const old = this.state.get(p);
    old?.m.dispose();
    old?.v.dispose();
    this.state.set(p, { m, v });
  }

  dispose(): void {
    for (const s of this.state.values()) {
      s.m.dispose();
      s.v.dispose();
    }
    this.state.clear();
  }
}

export interface SgdOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD extends Optimizer {
  lr: number;
  private readonly velocity = new Map<Tensor, DeviceTensor>();

  constructor(
    params: Tensor[],
    readonly options: SgdOptions,
  ) {
    super(params);
    this.lr = options.lr;
  }

  step(): void {
    const sgd = kernels.get<typeof opt.sgdStep>('optim.sgd', this.params[0]?.engine);
    const momentum = this.options.momentum ?? 0;
    for (const p of this.params) {
      if (!p.grad) continue;
      let buf = this.velocity.get(p) ?? null;
      const firstStep = momentum !== 0 && !buf;
      if (momentum !== 0 && !buf) this.velocity.set(p, (buf = p.engine.zeros(p.shape)));
      sgd(p.value, p.grad.value, buf, {
        lr: this.lr,
        momentum,
        dampening: this.options.dampening ?? 0,
        weightDecay: this.options.weightDecay ?? 0,
        nesterov: this.options.nesterov ?? false,
        firstStep,
      });
    }
  }

  dispose(): void {
    for (const v of this.velocity.values()) v.dispose();
    this.velocity.clear();
  }
}
