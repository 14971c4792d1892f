// Loading the server's configuration: YAML file < POD_IDENTITY_* environment
// < command-line flags, validated by the one schema. A bad value is one error
// naming the key.
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLError } from 'yaml';
import type { z } from 'zod';
import { serverConfigSchema, type ServerConfig } from './schema.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const ENV_PREFIX = 'POD_IDENTITY_';

/** camelCase key → POD_IDENTITY_SNAKE_CASE variable. */
export function envName(key: string): string {
  return ENV_PREFIX + key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** Where and why YAML failed to parse, without the parser's message: it quotes the text, which may hold a secret. */
function whereYamlFailed(error: unknown): string {
  if (!(error instanceof YAMLError)) return `: ${(error as Error).message}`;
  const at = error.linePos ? ` at line ${error.linePos[0].line}, column ${error.linePos[0].col}` : '';
  return `${at} (${error.code})`;
}

/**
 * Top-level keys found in the environment; values are YAML so lists and
 * numbers work. These variables are how a Kubernetes Secret reaches the
 * config (`admins`, `nodes`, `databaseUrl` from secretKeyRefs), so a parse
 * error names the variable and the position only.
 */
export function configFromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(serverConfigSchema.shape)) {
    const raw = env[envName(key)];
    if (raw === undefined) continue;
    try {
      out[key] = parseYaml(raw);
    } catch (error) {
      throw new ConfigError(`${envName(key)}: not valid YAML/JSON${whereYamlFailed(error)}`);
    }
  }
  return out;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const key = issue.path.length ? issue.path.map(String).join('.') : '(root)';
  return `${key}: ${issue.message}`;
}

/** Validates merged input; pure. */
export function parseServerConfig(input: unknown): ServerConfig {
  const result = serverConfigSchema.safeParse(input ?? {});
  if (!result.success) {
    throw new ConfigError(`invalid configuration: ${result.error.issues.map(describeIssue).join('; ')}`);
  }
  return result.data;
}

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** already-typed overrides from flags, only keys that were given */
  overrides?: Record<string, unknown>;
}

export function loadServerConfig(options: LoadOptions): ServerConfig {
  let fromFile: Record<string, unknown> = {};
  if (options.file) {
    let text: string;
    let parsed: unknown;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (error) {
      throw new ConfigError(`cannot read config file ${options.file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    try {
      parsed = parseYaml(text);
    } catch (error) {
      throw new ConfigError(`config file ${options.file} is not valid YAML${whereYamlFailed(error)}`);
    }
    if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new ConfigError(`config file ${options.file} is not valid YAML: top level must be a mapping`);
    }
    fromFile = (parsed ?? {}) as Record<string, unknown>;
  }
  return parseServerConfig({ ...fromFile, ...configFromEnv(options.env ?? {}), ...(options.overrides ?? {}) });
}
