// Validation of what callers hand the tensor factories (shapes, host arrays), before any GPU work.
import { describeValue } from './describe.js';
import { InvalidArgumentError, ShapeError } from './errors.js';

/** Every dimension a non-negative integer (a better message than sizeOf's for the public API). */
export function checkShape(shape: readonly number[]): void {
  if (!Array.isArray(shape)) throw new ShapeError(`shape must be an array of dimensions, got ${describeValue(shape)}`);
  shape.forEach((d, i) => {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0)
      throw new ShapeError(`invalid shape [${shape.join(', ')}]: dimension ${i} is ${describeValue(d)}; dimensions must be integers >= 0`);
  });
}

/** Host data must be an array-like of numbers (a typed array, or an array whose every element is a number). */
export function checkData(data: unknown): void {
  const got = () => (typeof data === 'string' ? 'a string' : describeValue(data));
  if (typeof data !== 'object' || data === null || typeof (data as ArrayLike<unknown>).length !== 'number')
    throw new InvalidArgumentError(`data must be an array or a typed array of numbers, got ${got()}`);
  if (ArrayBuffer.isView(data)) {
    if (data instanceof BigInt64Array || data instanceof BigUint64Array || data instanceof DataView)
      throw new InvalidArgumentError(`data must be an array or a typed array of numbers, got ${describeValue(data)}`);
    return;
  }
  const a = data as ArrayLike<unknown>;
  for (let i = 0; i < a.length; i++)
    if (typeof a[i] !== 'number') throw new InvalidArgumentError(`data[${i}] is ${describeValue(a[i])}, not a number`);
}

export const isInt32 = (v: number): boolean => Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff;

/** Min and max of data bound for an i32 tensor; throws for a value an int32 cannot hold (when `what` names the data). */
export function int32Range(data: ArrayLike<number>, what: string): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (what && !isInt32(v)) throw new InvalidArgumentError(`${what}[${i}] = ${v} cannot be stored in an i32 tensor (int32 integers only)`);
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}
