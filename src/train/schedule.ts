// Learning-rate schedules per epoch, for any optimizer (anything with a mutable `lr`).
//   constant  lr
//   cosine    lr * (1 + cos(pi * (epoch - 1) / epochs)) / 2: the full rate in epoch 1, decaying towards 0
import { WgslNnError } from '../gpu/errors.js';

export type LrSchedule = 'constant' | 'cosine';

export const LR_SCHEDULES: readonly LrSchedule[] = ['constant', 'cosine'];

/** The learning rate of `epoch` (1-based) of `epochs` for a base rate. */
export function scheduledLr(schedule: LrSchedule, baseLr: number, epoch: number, epochs: number): number {
  switch (schedule) {
    case 'constant':
      return baseLr;
    case 'cosine':
      return (baseLr * (1 + Math.cos((Math.PI * (epoch - 1)) / epochs))) / 2;
    default:
      throw new WgslNnError(`unknown learning-rate schedule '${schedule as string}' (expected one of: ${LR_SCHEDULES.join(', ')})`);
  }
}

/** Sets each optimizer's `lr` to the schedule's rate for `epoch`, from that optimizer's own base rate. */
export function applyLrSchedule(
  schedule: LrSchedule,
  epoch: number,
  epochs: number,
  targets: Iterable<{ optimizer: { lr: number }; baseLr: number }>,
): void {
  for (const { optimizer, baseLr } of targets) optimizer.lr = scheduledLr(schedule, baseLr, epoch, epochs);
}
