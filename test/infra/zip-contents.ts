// Reads the files inside a function's zip artifact (stored or deflated entries), so that infra tests
// can look at the very code `serverless package` ships.
import { readFileSync } from 'node:fs';
import { readZipEntries } from '../../local/function-code.js';

export interface ZipFile {
  name: string;
  content: Buffer;
}

/** Every file of a zip archive, directories left out. */
export function zipFiles(file: string): ZipFile[] {
  return readZipEntries(readFileSync(file))
    .filter((entry) => !entry.name.endsWith('/'))
    .map((entry) => ({ name: entry.name, content: entry.data() }));
}
