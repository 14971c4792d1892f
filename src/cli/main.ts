#!/usr/bin/env node
// The `pod-identity` command. `pod-identity <command> …` loads only that
// command (cli/program.ts). Every failure leaves as one line on stderr and a
// non-zero exit (cli/fail.ts).
import { CliError, oneLine } from './fail.js';
import { buildProgram, isCommand } from './program.js';

const invoked = process.argv[2];
const program = await buildProgram(invoked);
program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`${isCommand(invoked) ? `pod-identity ${invoked}` : 'pod-identity'}: ${oneLine(error)}\n`);
  process.exit(error instanceof CliError ? error.exitCode : 1);
});
