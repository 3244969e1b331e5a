// Dataset layouts (class-per-folder, good/defect), their errors, and mapping onto a model's classes.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClassMismatchError, DatasetError, mapToModelClasses, scanDataset } from '../src/data/dataset.js';

let tmp: string;
let n = 0;

async function png(file: string, value = 128): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const buf = await sharp(Buffer.alloc(16, value), { raw: { width: 4, height: 4, channels: 1 } }).png().toBuffer();
  await writeFile(file, buf);
}

/** A fresh dataset root with files: { 'cls/a.png': value | 'text' }. */
async function tree(files: Record<string, number | string>): Promise<string> {
  const root = path.join(tmp, `ds${n++}`);
  await mkdir(root, { recursive: true });
  for (const [rel, v] of Object.entries(files)) {
    const p = path.join(root, rel);
    if (typeof v === 'number') await png(p, v);
    else {
      await mkdir(path.dirname(p), { recursive: true });
      await writeFile(p, v);
    }
  }
  return root;
}

async function datasetError(p: Promise<unknown>): Promise<DatasetError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(DatasetError);
    return e as DatasetError;
  }
  throw new Error('expected a DatasetError');
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'wgsl-nn-dataset-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('scanDataset multiclass', () => {
  it('one class per folder, sorted by name, non-images skipped', async () => {
    const root = await tree({
      'scratch/b.png': 1,
      'scratch/a.PNG': 2,
      'scratch/readme.txt': 'notes',
      'Dent/x.jpg': 'not really a jpeg, but the scan only looks at names',
      'crack/y.tif': 3,
      'crack/z.webp': 4,
      'crack/w.bmp': 'bmp is not in the list',
      '.hidden/q.png': 5,
      'loose.png': 6,
    });
    const ds = await scanDataset(root, 'multiclass');
    expect(ds.classes).toEqual(['Dent', 'crack', 'scratch']); // code-unit order: upper case first
    expect(ds.folders).toEqual(ds.classes);
    expect(ds.items.map((i) => [i.rel, i.label, i.folder])).toEqual([
      ['Dent/x.jpg', 0, 'Dent'],
      ['crack/y.tif', 1, 'crack'],
      ['crack/z.webp', 1, 'crack'],
      ['scratch/a.PNG', 2, 'scratch'],
      ['scratch/b.png', 2, 'scratch'],
    ]);
    expect(ds.items[0].path).toBe(path.join(root, 'Dent', 'x.jpg'));
    expect(ds.skipped).toEqual(['crack/w.bmp', 'scratch/readme.txt']);
  });

  it('errors: missing root, file as root, no class folders, a folder with no images, a single class', async () => {
    const missing = path.join(tmp, 'does-not-exist');
    expect((await datasetError(scanDataset(missing, 'multiclass'))).message).toBe(`dataset root not found: ${missing}`);

    const fileRoot = await tree({ 'a/x.png': 1 });
    expect((await datasetError(scanDataset(path.join(fileRoot, 'a', 'x.png'), 'multiclass'))).message).toContain('not a directory');

    const flat = await tree({ 'x.png': 1, 'y.png': 2 });
    const e1 = await datasetError(scanDataset(flat, 'multiclass'));
    expect(e1.message).toContain('no class folders');
    expect(e1.message).toContain('found 2 image(s) directly in the root');

    const noImages = await tree({ 'good/a.png': 1, 'empty/notes.txt': 'x', 'empty/labels.csv': 'y' });
    const e2 = await datasetError(scanDataset(noImages, 'multiclass'));
    expect(e2.message).toContain("folder 'empty'");
    expect(e2.message).toContain('has no images');
    expect(e2.message).toContain('labels.csv');

    const emptyDir = await tree({ 'a/x.png': 1 });
    await mkdir(path.join(emptyDir, 'b'));
    expect((await datasetError(scanDataset(emptyDir, 'multiclass'))).message).toContain("folder 'b'");

    const single = await tree({ 'only/x.png': 1 });
    expect((await datasetError(scanDataset(single, 'multiclass'))).message).toContain('only one class');
    expect((await scanDataset(single, 'multiclass', { allowSingleClass: true })).classes).toEqual(['only']);

    await expect(scanDataset(single, 'regression' as never)).rejects.toThrow(/unknown task/);
  });
});

describe('scanDataset binary', () => {
  it('good/free/ok/normal (any case) -> good (0), every other folder -> defect (1)', async () => {
    const root = await tree({
      'Free/a.png': 1,
      'OK/b.png': 1,
      'normal/c.png': 1,
      'good/d.png': 1,
      'blowhole/e.png': 1,
      'crack/f.png': 1,
    });
    const ds = await scanDataset(root, 'binary');
    expect(ds.classes).toEqual(['good', 'defect']);
    const byFolder = Object.fromEntries(ds.items.map((i) => [i.folder, i.label]));
    expect(byFolder).toEqual({ Free: 0, OK: 0, normal: 0, good: 0, blowhole: 1, crack: 1 });
  });

  it('needs both a good and a defect folder', async () => {
    const onlyDefects = await tree({ 'crack/a.png': 1, 'pit/b.png': 1 });
    const e = await datasetError(scanDataset(onlyDefects, 'binary'));
    expect(e.message).toContain('needs a good folder');
    expect(e.message).toContain('defect: [crack, pit]');
    expect((await scanDataset(onlyDefects, 'binary', { allowSingleClass: true })).items.every((i) => i.label === 1)).toBe(true);
  });
});

describe('mapToModelClasses', () => {
  it('relabels folders to the model class order', async () => {
    const root = await tree({ 'scratch/a.png': 1, 'crack/b.png': 1 });
    const ds = await scanDataset(root, 'multiclass');
    const m = mapToModelClasses(ds, ['scratch', 'spot', 'crack']);
    expect(m.classes).toEqual(['scratch', 'spot', 'crack']);
    expect(m.items.map((i) => [i.rel, i.label])).toEqual([
      ['crack/b.png', 2],
      ['scratch/a.png', 0],
    ]);
    expect(ds.items.map((i) => i.label)).toEqual([0, 1]); // the scan is not modified
  });

  it('a unique case-insensitive match is accepted', async () => {
    const ds = await scanDataset(await tree({ 'Scratch/a.png': 1, 'CRACK/b.png': 1 }), 'multiclass');
    expect(mapToModelClasses(ds, ['crack', 'scratch']).items.map((i) => i.label)).toEqual([0, 1]);
  });

  it('unknown folders -> class mismatch listing both sides, unless skipped', async () => {
    const ds = await scanDataset(await tree({ 'scratch/a.png': 1, 'dent/b.png': 1, 'rust/c.png': 1 }), 'multiclass');
    let err: unknown;
    try {
      mapToModelClasses(ds, ['crack', 'scratch']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ClassMismatchError);
    const e = err as ClassMismatchError;
    expect(e.message).toContain('class mismatch');
    expect(e.message).toContain("'dent', 'rust'");
    expect(e.message).toContain('model classes: crack, scratch');
    expect(e.message).toContain('data folders:  dent, rust, scratch');
    expect(e.unknown).toEqual(['dent', 'rust']);
    const m = mapToModelClasses(ds, ['crack', 'scratch'], { skipUnknown: true });
    expect(m.items.map((i) => [i.rel, i.label])).toEqual([['scratch/a.png', 1]]);
    expect(m.skippedFolders).toEqual(['dent', 'rust']);
    // Nothing left at all is still an error.
    expect(() => mapToModelClasses(ds, ['x', 'y'], { skipUnknown: true })).toThrow(ClassMismatchError);
  });

  it('a binary model maps folders by the good/defect rule', async () => {
    const ds = await scanDataset(await tree({ 'free/a.png': 1, 'crack/b.png': 1, 'fray/c.png': 1 }), 'multiclass');
    const m = mapToModelClasses(ds, ['good', 'defect']);
    expect(m.items.map((i) => [i.folder, i.label])).toEqual([
      ['crack', 1],
      ['fray', 1],
      ['free', 0],
    ]);
    const bin = await scanDataset(await tree({ 'ok/a.png': 1, 'dent/b.png': 1 }), 'binary');
    expect(mapToModelClasses(bin, ['good', 'defect']).items.map((i) => i.label)).toEqual([1, 0]);
  });
});
