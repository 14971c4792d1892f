// Help as an operator reads it, for every command of the program: an example
// at the end, required options marked, defaults in one format, and each short
// flag meaning one long option everywhere (the AWS agent's where it has one).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/program.js';

function allCommands(command: Command): Command[] {
  return command.commands.flatMap((sub) => [sub, ...allCommands(sub)]);
}

const pathOf = (command: Command): string => (command.parent ? `${pathOf(command.parent)} ${command.name()}` : command.name());

test('every command has an example, marks required options and prints defaults one way', async () => {
  const program = await buildProgram();
  const commands = allCommands(program);
  assert.ok(commands.length >= 15, `found ${commands.length} commands`);
  for (const command of commands) {
    let help = '';
    command.configureOutput({ writeOut: (text) => (help += text) });
    command.outputHelp();
    const name = pathOf(command);
    assert.match(help, /\nExamples?:\n {2}pod-identity /, `${name}: an example`);
    const rendered = command.createHelp();
    for (const option of command.options) {
      if (option.mandatory) assert.match(rendered.optionDescription(option), /\(required\)$/, `${name} ${option.long}: marked required`);
    }
    assert.doesNotMatch(help, /\(default: "/, `${name}: defaults unquoted`);
    assert.doesNotMatch(help, /\(default [^:]/, `${name}: defaults as "(default: x)"`);
  }
});

test('a short flag means the same long option in every command', async () => {
  const program = await buildProgram();
  const meaning = new Map<string, string>();
  for (const command of allCommands(program)) {
    for (const option of command.options) {
      if (!option.short) continue;
      const seen = meaning.get(option.short);
      assert.ok(seen === undefined || seen === option.long, `${option.short} is ${seen} elsewhere but ${option.long} in ${pathOf(command)}`);
      meaning.set(option.short, option.long!);
    }
  }
  // The AWS agent's short flags.
  assert.equal(meaning.get('-c'), '--cluster-name');
  assert.equal(meaning.get('-p'), '--port');
  assert.equal(meaning.get('-b'), '--bind-hosts');
});
