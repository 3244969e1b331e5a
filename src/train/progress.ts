// The training progress bar (cli-progress, on stderr): epoch, batches, any set of named running
// values (losses, accuracy, ...) and samples per second, e.g.
//   epoch 3/20 |████░░░░| 12/40 batches | loss 0.4123 | acc 0.871 | 310.2 img/s | ETA 9s
// Drawn only on a TTY (a log file gets the trainer's one line per epoch instead).
import cliProgress from 'cli-progress';

export interface ProgressField {
  /** Key in the values passed to update(). */
  key: string;
  /** Shown before the value (default the key). */
  label?: string;
  /** Decimals (default 4). */
  digits?: number;
}

export interface TrainingProgressOptions {
  epochs: number;
  /** The running values to show, in order. */
  fields: ProgressField[];
  /** Unit of samples per second (default 'img'). */
  unit?: string;
  /** Draw the bar (default: when stderr is a TTY). */
  enabled?: boolean;
  stream?: NodeJS.WritableStream;
}

export class TrainingProgress {
  private readonly bar: cliProgress.SingleBar;
  private readonly enabled: boolean;
  private active = false;

  constructor(private readonly options: TrainingProgressOptions) {
    const stream = options.stream ?? process.stderr;
    this.enabled = options.enabled ?? !!(stream as NodeJS.WriteStream).isTTY;
    // Payload tokens f0, f1, ... so that no field name collides with cli-progress's own (value, total, eta, ...).
    const fields = options.fields.map((f, i) => ` | ${f.label ?? f.key} {f${i}}`).join('');
    this.bar = new cliProgress.SingleBar(
      {
        format: `epoch {epoch}/{epochs} |{bar}| {value}/{total} batches${fields} | {rate} ${options.unit ?? 'img'}/s | ETA {eta_formatted}`,
        hideCursor: true,
        clearOnComplete: true,
        stream,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  start(epoch: number, batches: number): void {
    if (!this.enabled) return;
    const blank = Object.fromEntries(this.options.fields.map((_, i) => [`f${i}`, '-']));
    this.bar.start(batches, 0, { epoch, epochs: this.options.epochs, rate: '-', ...blank });
    this.active = true;
  }

  /** `batch` batches done; `values` holds the fields' current values (a missing one shows '-'). */
  update(batch: number, values: Record<string, number>, samplesPerSecond: number): void {
    if (!this.active) return;
    const payload = Object.fromEntries(
      this.options.fields.map((f, i) => [`f${i}`, values[f.key] === undefined ? '-' : values[f.key].toFixed(f.digits ?? 4)]),
    );
    this.bar.update(batch, { ...payload, rate: samplesPerSecond.toFixed(1) });
  }

  /** Clears the bar (before the trainer prints its epoch line). */
  stop(): void {
    if (!this.active) return;
    this.bar.stop();
    this.active = false;
  }
}
