// Waiting for the GPU without burning a core.
//
// dawn.node settles its promises (queue.onSubmittedWorkDone, buffer.mapAsync, ...) only inside
// instance.ProcessEvents(), which its AsyncRunner calls from a chain of setImmediate callbacks for as
// long as any such promise is pending (src/dawn/node/binding/AsyncRunner.cpp: each tick calls
// ProcessEvents and queues the next tick). Awaiting one of them therefore turns the Node main thread
// into a busy poll: on lavapipe it took ~70-85 % of a core from the two rasterizer threads that do the
// actual work, and on a real GPU it takes a core an inspection station needs for decoding images.
//
// `GpuWaiter` instead puts the main thread to sleep (Atomics.wait, which blocks without spinning) in
// short slices and gives the event loop one turn between slices. During a sleep no setImmediate runs,
// so dawn does not poll; in the turn, dawn's queued tick runs ProcessEvents once and settles whatever
// finished. Slices start small (latency of short waits stays in the tens of microseconds) and double
// up to `maxSliceMs`, so a long wait costs one wake-up every couple of milliseconds and overshoots the
// GPU's finish by at most one slice. One loop serves every pending wait of an engine, so concurrent
// callers (pipelined loss reads, batched inspections) share the wake-ups instead of stacking sleeps.
//
// The trade-off: during a slice the event loop is blocked, so timers and I/O callbacks are served at
// most `maxSliceMs` late while the GPU works. `mode: 'poll'` restores dawn's own behaviour.

export type WaitMode = 'sleep' | 'poll';

export interface GpuWaiterOptions {
  mode?: WaitMode;
  /** First sleep slice in ms (default 0.05). */
  minSliceMs?: number;
  /** Longest sleep slice in ms (default 2): the most a wait overshoots and the event loop is held. */
  maxSliceMs?: number;
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the calling thread for `ms` milliseconds without spinning. */
function sleepThread(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class GpuWaiter {
  readonly mode: WaitMode;
  private readonly minSliceMs: number;
  private readonly maxSliceMs: number;
  private pending = 0;
  private looping = false;
  /** Set when a wait settles, so the next slice starts small again. */
  private settled = false;
  /** Milliseconds the main thread slept while waiting (for measurements). */
  sleptMs = 0;
  /** Waits taken through the sleeping loop (for tests and measurements). */
  waits = 0;

  constructor(options: GpuWaiterOptions = {}) {
    this.mode = options.mode ?? 'sleep';
    this.minSliceMs = options.minSliceMs ?? 0.05;
    this.maxSliceMs = options.maxSliceMs ?? 2;
  }

  /** Resolves (or rejects) as `work` does; while it is pending the main thread sleeps in slices. */
  wait<T>(work: Promise<T>): Promise<T> {
    if (this.mode === 'poll') return work;
    this.waits++;
    this.pending++;
    const done = (): void => {
      this.pending--;
      this.settled = true;
    };
    work.then(done, done);
    if (!this.looping) void this.loop();
    return work;
  }

  private async loop(): Promise<void> {
    this.looping = true;
    let slice = this.minSliceMs;
    try {
      // A turn first: work that is already finished settles without any sleep.
      await nextTurn();
      while (this.pending > 0) {
        if (this.settled) {
          this.settled = false;
          slice = this.minSliceMs;
        }
        const t0 = performance.now();
        sleepThread(slice);
        this.sleptMs += performance.now() - t0;
        slice = Math.min(slice * 2, this.maxSliceMs);
        await nextTurn();
      }
    } finally {
      this.looping = false;
    }
  }
}
