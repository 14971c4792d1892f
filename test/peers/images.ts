// Images for the real node, built from their Dockerfiles with
// scripts/build-image.sh (buildah, on the local base images of
// scripts/install-node-peers.sh) and kept as docker-archives under the peers
// cache, named by a hash of everything the build reads: an unchanged tree
// reuses its archive, any change to the Dockerfile or its inputs rebuilds it.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { imagesDir } from './paths.js';

const REPO = resolve(import.meta.dirname, '..', '..');

export interface ImageRecipe {
  /** image name; tagged localhost/<name>:<hash> */
  name: string;
  /** Dockerfile, relative to the repository */
  dockerfile: string;
  /** build context, relative to the repository */
  context: string;
  /** files and directories (relative to the repository) whose contents the build reads */
  inputs: string[];
}

export interface BuiltImage {
  /** the reference pods use, e.g. localhost/pod-identity:0123456789ab */
  ref: string;
  repository: string;
  tag: string;
  archive: string;
  /** false when the archive of the same inputs was reused */
  built: boolean;
  ms: number;
  /** the build script's last line (size and time), when built */
  summary?: string;
}

/** deploy/Dockerfile and what it copies. */
export const PRODUCT_IMAGE: ImageRecipe = {
  name: 'pod-identity',
  dockerfile: 'deploy/Dockerfile',
  context: '.',
  inputs: ['deploy/Dockerfile', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src'],
};

function files(path: string): string[] {
  const full = join(REPO, path);
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full)
    .filter((name) => name !== 'node_modules')
    .flatMap((name) => files(join(path, name)));
}

function inputsHash(recipe: ImageRecipe): string {
  const hash = createHash('sha256');
  for (const file of recipe.inputs.flatMap(files).sort()) {
    hash.update(`${relative(REPO, join(REPO, file))}\0`);
    hash.update(readFileSync(join(REPO, file)));
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 12);
}

export async function buildImage(recipe: ImageRecipe): Promise<BuiltImage> {
  const started = Date.now();
  const tag = inputsHash(recipe);
  const repository = `localhost/${recipe.name}`;
  const ref = `${repository}:${tag}`;
  const dir = imagesDir();
  const archive = join(dir, `${recipe.name}-${tag}.tar`);
  if (existsSync(archive)) return { ref, repository, tag, archive, built: false, ms: Date.now() - started };
  const output = await new Promise<string>((resolvePromise, reject) => {
    execFile(
      'bash',
      [join(REPO, 'scripts/build-image.sh'), '-f', join(REPO, recipe.dockerfile), '-t', ref, '-o', `${archive}.partial`, join(REPO, recipe.context)],
      { timeout: 900_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`building ${ref} from ${recipe.dockerfile} failed:\n${stderr || stdout || error.message}`, { cause: error }));
        else resolvePromise(stdout);
      },
    );
  });
  // only a complete archive gets the name that marks it reusable; older builds of the image go
  for (const old of readdirSync(dir).filter((f) => f.startsWith(`${recipe.name}-`) && f.endsWith('.tar'))) rmSync(join(dir, old), { force: true });
  await new Promise<void>((resolvePromise, reject) => execFile('mv', [`${archive}.partial`, archive], (error) => (error ? reject(error) : resolvePromise())));
  const summary = output.trim().split('\n').pop()?.replace(`${archive}.partial`, archive);
  return { ref, repository, tag, archive, built: true, ms: Date.now() - started, summary };
}
