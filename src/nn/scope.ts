// Tensor-lifetime scopes: tidy() disposes what a block created, keep() exempts a tensor.
//
// Scopes belong to the autograd layer, not to the GPU runtime: src/gpu knows nothing of them. What
// registers with the innermost scope is each nn Tensor (its constructor calls track(); raw
// DeviceTensors made by kernels are owned by the op that made them), so no hook in the engine is
// needed. The stack of scopes is kept per engine, as before: a tidy() on one engine leaves tensors of
// another engine alone. For existing callers, `engine.tidy/keep/track` remain as thin delegates,
// installed on Engine below (the same declaration merging src/nn/tensor.ts uses for engine.tensor()).
import { Engine } from '../gpu/engine.js';

/** Anything with a dispose(): what tidy() scopes track. */
export interface Disposable {
  dispose(): void;
}

const scopesByEngine = new WeakMap<Engine, Set<Disposable>[]>();

function scopesOf(engine: Engine): Set<Disposable>[] {
  let scopes = scopesByEngine.get(engine);
  if (!scopes) scopesByEngine.set(engine, (scopes = []));
  return scopes;
}

/**
 * Runs `fn` and disposes every tracked object (tensors) of `engine` created while it ran, except what it
 * returns (a tensor, or tensors inside a returned array or plain object) and what was `keep()`-ed.
 * Scopes nest; what a scope returns moves to the enclosing scope. `fn` must be synchronous.
 */
export function tidy<T>(engine: Engine, fn: () => T): T {
  const scopes = scopesOf(engine);
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('wgsl-nn: tidy() takes a synchronous function');
  } catch (e) {
    // A failing op (bad arguments, a limit) must not leak what the scope made before it failed.
    for (const d of scope) {
      try {
        d.dispose();
      } catch {
        /* keep the original error */
      }
    }
    throw e;
  } finally {
    scopes.pop();
  }
  const returned = new Set<Disposable>();
  collectDisposables(result, returned);
  const parent = scopes.at(-1);
  for (const d of scope) {
    if (returned.has(d)) parent?.add(d);
    else d.dispose();
  }
  return result;
}

/** @internal Registers a new object with the innermost tidy() scope of `engine`, if any. */
export function track<T extends Disposable>(engine: Engine, d: T): T {
  scopesByEngine.get(engine)?.at(-1)?.add(d);
  return d;
}

/** Exempts `d` from disposal by the enclosing tidy() scopes of `engine`. */
export function keep<T extends Disposable>(engine: Engine, d: T): T {
  for (const s of scopesByEngine.get(engine) ?? []) s.delete(d);
  return d;
}

function collectDisposables(v: unknown, out: Set<Disposable>, depth = 0): void {
  if (!v || typeof v !== 'object' || depth > 4) return;
  if (typeof (v as Disposable).dispose === 'function') {
    out.add(v as Disposable);
    return;
  }
  if (Array.isArray(v)) for (const x of v) collectDisposables(x, out, depth + 1);
  else if (Object.getPrototypeOf(v) === Object.prototype) for (const x of Object.values(v)) collectDisposables(x, out, depth + 1);
}

// The scope functions as engine methods: `engine.tidy(fn)`, `engine.keep(t)`, `engine.track(t)`.
declare module '../gpu/engine.js' {
  interface Engine {
    /** See tidy() in src/nn/scope.ts. */
    tidy<T>(fn: () => T): T;
    /** @internal See track() in src/nn/scope.ts. */
    track<T extends Disposable>(d: T): T;
    /** See keep() in src/nn/scope.ts. */
    keep<T extends Disposable>(d: T): T;
  }
}
Engine.prototype.tidy = function <T>(this: Engine, fn: () => T): T {
  return tidy(this, fn);
};
Engine.prototype.track = function <T extends Disposable>(this: Engine, d: T): T {
  return track(this, d);
};
Engine.prototype.keep = function <T extends Disposable>(this: Engine, d: T): T {
  return keep(this, d);
};
