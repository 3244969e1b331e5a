// Dataset layouts on disk.
//
//   multiclass: root/<class>/*.png   every sub-folder of root is a class; classes sorted by name.
//   binary:     root/<folder>/*.png  folders named good, free, ok or normal (case-insensitive) are
//                                    class 'good' (index 0); every other folder is 'defect' (1).
//
// Rules: only the direct children of a class folder are read (no recursion); a file is an image when
// its extension is one of IMAGE_EXTENSIONS (.png .jpg .jpeg .tif .tiff .webp, case-insensitive);
// other files are skipped and listed in `skipped`. Folders and files whose names start with '.' are
// ignored. A class folder with no image files is an error. Names are sorted by code unit (not
// locale), so the order is identical on every platform.

import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { WgslNnError } from '../gpu/errors.js';
import { IMAGE_EXTENSIONS, isImageFile } from './images.js';

export type Task = 'multiclass' | 'binary';

/** A dataset folder is missing, empty or does not fit the model. */
export class DatasetError extends WgslNnError {}

/** A dataset's folders do not match an existing model's classes. */
export class ClassMismatchError extends DatasetError {
  constructor(
    readonly modelClasses: string[],
    readonly dataFolders: string[],
    readonly unknown: string[],
  ) {
    super(
      `class mismatch: data folder(s) ${unknown.map((u) => `'${u}'`).join(', ')} are not classes of the model.\n` +
        `  model classes: ${modelClasses.join(', ')}\n` +
        `  data folders:  ${dataFolders.join(', ')}\n` +
        '  Rename the folders to the model\'s class names, or pass the option that skips unknown folders.',
    );
  }
}

export interface DatasetItem {
  /** Path as found (root joined with folder and file name). */
  path: string;
  /** Class index into `classes`. */
  label: number;
  /** The folder the file is in (the class name for multiclass). */
  folder: string;
  /** 'folder/file' with forward slashes: a platform-independent key used for sorting and metadata. */
  rel: string;
}

export interface ScannedDataset {
  root: string;
  task: Task;
  classes: string[];
  items: DatasetItem[];
  /** Folder names found, sorted. */
  folders: string[];
  /** Non-image files that were skipped ('folder/file'). */
  skipped: string[];
}

export const GOOD_FOLDER_NAMES: readonly string[] = ['good', 'free', 'ok', 'normal'];
export const BINARY_CLASSES: readonly string[] = ['good', 'defect'];

export function isGoodFolder(name: string): boolean {
  return GOOD_FOLDER_NAMES.includes(name.toLowerCase());
}

/** Code-unit order: the same on every platform and locale. */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface ScanOptions {
  /** Accept a dataset with only one class (e.g. for evaluation). Default false. */
  allowSingleClass?: boolean;
}

export async function scanDataset(root: string, task: Task, opts: ScanOptions = {}): Promise<ScannedDataset> {
  if (task !== 'multiclass' && task !== 'binary') throw new DatasetError(`unknown task '${String(task)}': expected multiclass or binary`);
  let st;
  try {
    st = await stat(root);
  } catch {
    throw new DatasetError(`dataset root not found: ${root}`);
  }
  if (!st.isDirectory()) throw new DatasetError(`dataset root is not a directory: ${root}`);

  const entries = await readdir(root, { withFileTypes: true });
  const folders: string[] = [];
  let looseImages = 0;
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    let isDir = e.isDirectory();
    if (e.isSymbolicLink()) isDir = (await stat(path.join(root, e.name)).catch(() => null))?.isDirectory() ?? false;
    if (isDir) folders.push(e.name);
    else if (isImageFile(e.name)) looseImages++;
  }
  folders.sort(byCodeUnit);
  if (folders.length === 0) {
    const hint = looseImages > 0 ? ` (found ${looseImages} image(s) directly in the root; put each class in its own sub-folder)` : '';
    throw new DatasetError(`no class folders in dataset root ${root}${hint}; expected root/<class>/<image>.png`);
  }

  const perFolder = new Map<string, { files: string[]; skipped: string[] }>();
  for (const folder of folders) {
    const dir = path.join(root, folder);
    const files: string[] = [];
    const skipped: string[] = [];
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      if (e.isDirectory()) continue;
      if (isImageFile(e.name)) files.push(e.name);
      else skipped.push(e.name);
    }
    files.sort(byCodeUnit);
    skipped.sort(byCodeUnit);
    if (files.length === 0) {
      const other = skipped.length ? `; it holds ${skipped.length} other file(s), e.g. ${skipped.slice(0, 3).join(', ')}` : ' (it is empty)';
      throw new DatasetError(`folder '${folder}' in ${root} has no images (${IMAGE_EXTENSIONS.join(' ')})${other}`);
    }
    perFolder.set(folder, { files, skipped });
  }

  let classes: string[];
  let labelOf: (folder: string) => number;
  if (task === 'multiclass') {
    classes = folders.slice();
    labelOf = (f) => classes.indexOf(f);
    if (classes.length < 2 && !opts.allowSingleClass) {
      throw new DatasetError(`multiclass dataset ${root} has only one class folder ('${classes[0]}'); need at least two`);
    }
  } else {
    classes = BINARY_CLASSES.slice();
    labelOf = (f) => (isGoodFolder(f) ? 0 : 1);
    const good = folders.filter(isGoodFolder);
    const defect = folders.filter((f) => !isGoodFolder(f));
    if ((good.length === 0 || defect.length === 0) && !opts.allowSingleClass) {
      throw new DatasetError(
        `binary dataset ${root} needs a good folder (${GOOD_FOLDER_NAMES.join(', ')}) and at least one defect folder; ` +
          `found good: [${good.join(', ')}], defect: [${defect.join(', ')}]`,
      );
    }
  }

  const items: DatasetItem[] = [];
  const skippedAll: string[] = [];
  for (const folder of folders) {
    const { files, skipped } = perFolder.get(folder)!;
    const label = labelOf(folder);
    for (const f of files) items.push({ path: path.join(root, folder, f), label, folder, rel: `${folder}/${f}` });
    for (const f of skipped) skippedAll.push(`${folder}/${f}`);
  }
  return { root, task, classes, items, folders, skipped: skippedAll };
}

export interface MapOptions {
  /** Drop items of folders that are not model classes instead of failing. Default false. */
  skipUnknown?: boolean;
}

export interface MappedDataset {
  classes: string[];
  items: DatasetItem[];
  /** Folders whose items were dropped (only with skipUnknown). */
  skippedFolders: string[];
}

/**
 * Relabel a scanned dataset with an existing model's classes (for evaluation).
 *
 * binary models (classes exactly ['good', 'defect']) on a binary scan: labels kept (folder rule).
 * Otherwise each data folder must name a model class (exact match, else a unique case-insensitive
 * match); unknown folders raise ClassMismatchError unless skipUnknown, which drops them.
 */
export function mapToModelClasses(ds: ScannedDataset, modelClasses: string[], opts: MapOptions = {}): MappedDataset {
  const isBinaryModel = modelClasses.length === 2 && modelClasses[0] === 'good' && modelClasses[1] === 'defect';
  if (ds.task === 'binary' && isBinaryModel) {
    return { classes: modelClasses.slice(), items: ds.items.map((it) => ({ ...it })), skippedFolders: [] };
  }
  const lookup = new Map<string, number>();
  const unknown: string[] = [];
  for (const folder of ds.folders) {
    let idx = modelClasses.indexOf(folder);
    if (idx < 0) {
      const ci = modelClasses.map((c, i) => [c, i] as const).filter(([c]) => c.toLowerCase() === folder.toLowerCase());
      if (ci.length === 1) idx = ci[0][1];
    }
    if (idx < 0 && isBinaryModel) idx = isGoodFolder(folder) ? 0 : 1;
    if (idx < 0) unknown.push(folder);
    else lookup.set(folder, idx);
  }
  if (unknown.length > 0 && !opts.skipUnknown) throw new ClassMismatchError(modelClasses.slice(), ds.folders.slice(), unknown);
  const items = ds.items.filter((it) => lookup.has(it.folder)).map((it) => ({ ...it, label: lookup.get(it.folder)! }));
  if (items.length === 0) throw new ClassMismatchError(modelClasses.slice(), ds.folders.slice(), unknown);
  return { classes: modelClasses.slice(), items, skippedFolders: unknown };
}
