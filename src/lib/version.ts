// The product's version: package.json's, read once (the file sits two levels
// above both src/lib and dist/lib, and the image copies it beside dist/).
import { readFileSync } from 'node:fs';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
