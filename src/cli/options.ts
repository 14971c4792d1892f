// What every command's options have in common: the parsers that turn a bad
// value into one line naming the option (commander prints it and exits 1),
// the same short flag for the same meaning everywhere (the AWS agent's -c
// for --cluster-name, -p for --port, -b for --bind-hosts), and help that
// marks required options and ends with an example.
import { existsSync, statSync } from 'node:fs';
import { Help, InvalidArgumentError, Option, type Command } from 'commander';

/** Help for every command: required options say so, and defaults read `(default: x)` whatever their type. */
export function configureHelp(program: Command): void {
  program.configureHelp({
    optionDescription(option: Option): string {
      const base = Help.prototype.optionDescription.call(this, option).replace(/\(default: "([^"]*)"/, '(default: $1');
      return option.mandatory ? `${base} (required)` : base;
    },
  });
}

/** Adds the usage examples every command's help ends with. */
export function withExamples(command: Command, ...examples: string[]): Command {
  return command.addHelpText('after', `\nExample${examples.length > 1 ? 's' : ''}:\n${examples.map((e) => `  ${e}`).join('\n')}`);
}

/** A documented default that lives elsewhere (the config schema), in the same format commander prints. */
export function defaultNote(value: string | number): string {
  return `(default: ${value})`;
}

export function integer(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number above 0');
  return n;
}

export function port(value: string): number {
  return integer(0, 65535)(value);
}

/** A file that exists (checked now, so a typo is one line, not a stack trace later). */
export function existingFile(value: string): string {
  if (!existsSync(value)) throw new InvalidArgumentError(`no such file: ${value}`);
  if (!statSync(value).isFile()) throw new InvalidArgumentError(`not a file: ${value}`);
  return value;
}

/** An http(s) URL with a host, e.g. http://127.0.0.1:8080. */
export function endpointUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`expected a URL such as http://127.0.0.1:8080${/^[\w.-]+:\d+$/.test(value) ? ` (add http:// in front of ${value})` : ''}`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) throw new InvalidArgumentError('expected an http:// or https:// URL such as http://127.0.0.1:8080');
  return value.replace(/\/+$/, '');
}

const ARN = /^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:.+$/;

export function arn(value: string): string {
  if (!ARN.test(value)) throw new InvalidArgumentError('expected an ARN such as arn:aws:iam::111122223333:role/name');
  return value;
}

/** `-c, --cluster-name`: the AWS agent's flag, the same in every command. */
export function clusterNameOption(description: string): Option {
  return new Option('-c, --cluster-name <name>', description).makeOptionMandatory();
}
