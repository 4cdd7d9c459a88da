// The code of a Lambda function, as `serverless package` zipped it. Lambda unpacks the zip into
// /var/task and loads the handler from there; the local runtime does the same into a cache
// directory, so each function runs its own bundle, not the repository's source.

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { REPOSITORY_ROOT } from './package-stack.js';

const CODE_CACHE = path.join(REPOSITORY_ROOT, 'node_modules', '.cache', 'local-runtime', 'code');

/**
 * Unpacks a deployment zip into a directory named after its content hash and returns that
 * directory. The same zip is unpacked once; directories are never rewritten while in use.
 */
export async function unpackFunctionZip(zipPath: string): Promise<string> {
  const zip = await readFile(zipPath);
  const taskRoot = path.join(CODE_CACHE, createHash('sha256').update(zip).digest('hex').slice(0, 24));
  if (existsSync(taskRoot)) return taskRoot;
  const workDir = `${taskRoot}.unpacking-${process.pid}-${Date.now()}`;
  for (const entry of readZipEntries(zip)) {
    const target = path.resolve(workDir, entry.name);
    if (!target.startsWith(workDir + path.sep)) throw new Error(`${zipPath}: entry ${entry.name} escapes the archive`);
    if (entry.name.endsWith('/')) {
      await mkdir(target, { recursive: true });
      continue;
    }
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, entry.data());
  }
  await mkdir(workDir, { recursive: true });
  try {
    await rename(workDir, taskRoot);
  } catch (error) {
    // Another process unpacked the same zip first: its copy is identical.
    await rm(workDir, { recursive: true, force: true });
    if (!existsSync(taskRoot)) throw error;
  }
  return taskRoot;
}

/**
 * Finds the file of a handler such as `functions/createOrder.handler` under a task root, the way
 * the Node.js runtime does: the module path with .mjs, .js or .cjs, then the export name.
 */
export function locateHandler(taskRoot: string, handler: string, extensions = ['.mjs', '.js', '.cjs']) {
  const dot = handler.lastIndexOf('.');
  if (dot <= 0) throw new Error(`Handler ${handler} is not of the form module.export`);
  const modulePath = handler.slice(0, dot);
  const exportName = handler.slice(dot + 1);
  for (const extension of extensions) {
    const file = path.join(taskRoot, modulePath + extension);
    if (existsSync(file)) return { file, exportName };
  }
  throw new Error(`Runtime.ImportModuleError: cannot find module ${modulePath} (${extensions.join(', ')}) in ${taskRoot}`);
}

export interface ZipEntry {
  name: string;
  data(): Buffer;
}

/**
 * Reads the central directory of a zip (no ZIP64, no encryption: deployment packages are small).
 * Also what the infra tests use to look at the very code `serverless package` ships.
 */
export function readZipEntries(zip: Buffer): ZipEntry[] {
  const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
  const CENTRAL_FILE_HEADER = 0x02014b50;
  const LOCAL_FILE_HEADER = 0x04034b50;
  let end = -1;
  // The end record is 22 bytes plus a comment of at most 65535 bytes, at the end of the file.
  for (let offset = zip.length - 22; offset >= Math.max(0, zip.length - 22 - 0xffff); offset--) {
    if (zip.readUInt32LE(offset) === END_OF_CENTRAL_DIRECTORY) {
      end = offset;
      break;
    }
  }
  if (end < 0) throw new Error('Not a zip file (no end of central directory record)');
  const count = zip.readUInt16LE(end + 10);
  let offset = zip.readUInt32LE(end + 16);
  const entries: ZipEntry[] = [];
  for (let index = 0; index < count; index++) {
    if (zip.readUInt32LE(offset) !== CENTRAL_FILE_HEADER) throw new Error('Corrupt zip central directory');
    const method = zip.readUInt16LE(offset + 10);
    const compressedSize = zip.readUInt32LE(offset + 20);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const localHeader = zip.readUInt32LE(offset + 42);
    const name = zip.toString('utf8', offset + 46, offset + 46 + nameLength);
    offset += 46 + nameLength + extraLength + commentLength;
    entries.push({
      name,
      data() {
        if (zip.readUInt32LE(localHeader) !== LOCAL_FILE_HEADER) throw new Error(`Corrupt zip entry ${name}`);
        const start = localHeader + 30 + zip.readUInt16LE(localHeader + 26) + zip.readUInt16LE(localHeader + 28);
        const raw = zip.subarray(start, start + compressedSize);
        if (method === 0) return Buffer.from(raw);
        if (method === 8) return inflateRawSync(raw);
        throw new Error(`Zip entry ${name} uses unsupported compression method ${method}`);
      },
    });
  }
  return entries;
}
