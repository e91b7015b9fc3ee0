/**
 * The CLI's command table, read off the job registry's body schemas: flags, request bodies, the
 * spellings kept from before, a kind that has no entry of its own, and the parser's rules.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import { commandOptions, type Command } from '../../src/cli/command.js';
import { commandTable } from '../../src/cli/commands/index.js';
import type { JobSchema, SubmitCommand } from '../../src/cli/commands/submit.js';
import { commandHelp, generalHelp } from '../../src/cli/help.js';
import { parseArgs, requireOptions, UsageError } from '../../src/cli/options.js';
import { builtinJobSchemas } from '../../src/main.js';
import { testConfig, tmpDir } from '../helpers.js';

const sleepKind: JobSchema = {
  kind: 'sleep',
  resourceClass: 'preprocessing',
  route: 'sleep',
  body: Type.Object({
    ms: Type.Integer({ minimum: 0, description: 'How long' }),
    tags: Type.Optional(Type.Array(Type.String())),
    loud: Type.Boolean({ default: true }),
    mode: Type.Union([Type.Literal('light'), Type.Literal('deep')], { default: 'light' }),
    limit: Type.Optional(Type.Union([Type.Number({ exclusiveMinimum: 0 }), Type.Null()])),
  }),
};

const table = commandTable([...builtinJobSchemas(testConfig(tmpDir())), sleepKind]);

function command(name: string): SubmitCommand {
  const c = table.find((x) => x.name === name);
  assert.ok(c && 'body' in c, `no submitting command '${name}'`);
  return c as SubmitCommand;
}

function body(name: string, argv: string[]): Record<string, unknown> {
  const c = command(name);
  const args = parseArgs(argv, commandOptions(c), name);
  requireOptions(args);
  return c.body(args);
}

describe('the CLI command table', () => {
  it('has one submitting command per kind the API can create, at its creation route', () => {
    const submitting = table.filter((c): c is SubmitCommand => 'body' in c);
    assert.deepEqual(
      submitting.map((c) => [c.name, c.kind, c.path]),
      [
        ['split', 'dataset_split', '/api/v2/preprocessing/split'],
        ['augment', 'data_augmentation', '/api/v2/preprocessing/augment'],
        ['crop', 'image_crop', '/api/v2/preprocessing/crop'],
        ['spectrogram', 'spectrogram', '/api/v2/preprocessing/spectrogram'],
        ['train', 'training', '/api/v2/training/start'],
        ['evaluate', 'evaluation', '/api/v2/evaluation/start'],
        ['infer', 'inference', '/api/v2/inference/start'],
        ['sleep', 'sleep', '/api/v2/preprocessing/sleep'],
      ],
    );
    const kinds = (c: Command) => commandOptions(c).map((o) => o.name);
    assert.ok(kinds(command('train')).includes('device'), 'model tasks take device fields');
    assert.ok(!kinds(command('split')).includes('device'), 'preprocessing tasks do not');
  });

  it('gives a kind without an entry a generic command, typed by its schema', () => {
    assert.deepEqual(
      body('sleep', ['--ms', '5', '--tags', 'a, b', '--no-loud', '--mode', 'deep', '--limit', '2.5']),
      {
        ms: 5,
        tags: ['a', 'b'],
        loud: false,
        mode: 'deep',
        limit: 2.5,
      },
    );
    // Only what was given is sent: the server fills its own defaults.
    assert.deepEqual(body('sleep', ['--ms=0', '--priority', '2', '--task-id', 'x1']), {
      ms: 0,
      priority: 2,
      task_id: 'x1',
    });
    const help = commandHelp(command('sleep'));
    assert.match(help, /^Usage: rfuav sleep --ms N \[options\]$/m);
    assert.match(help, /--ms N\s+How long \[required; >=0\]/);
    assert.match(help, /--tags TEXT\[,TEXT…\]/);
    assert.match(help, /--\[no-\]loud\s+\[default on\]/);
    assert.match(help, /--mode light\|deep\s+\[default light\]/);
    assert.match(help, /--limit X\s+\[>0\]/);
    assert.match(generalHelp(table), /^ {2}sleep {8,}Queue a sleep task$/m);
  });

  it("keeps today's spellings as aliases of the schema's names", () => {
    const train = [
      ['--model', 'resnet18', '--num-classes', '4', '--train', 'a/train', '--val', 'a/val', '--save', 'm'],
      ['--epochs', '6', '--lr', '0.001', '--weights', 'w.pth', '--keep-epochs', '2', '--no-pretrained'],
    ].flat();
    assert.deepEqual(body('train', train), {
      model: 'resnet18',
      num_classes: 4,
      train_path: 'a/train',
      val_path: 'a/val',
      save_path: 'm',
      num_epochs: 6,
      learning_rate: 0.001,
      weight_path: 'w.pth',
      keep_epoch_weights: 2,
      pretrained: false,
    });
    assert.deepEqual(
      body('train', [
        '--model',
        'resnet18',
        '--num-classes',
        '4',
        '--train-path',
        'x',
        '--val-path',
        'y',
        '--save-path',
        'z',
      ]),
      { model: 'resnet18', num_classes: 4, train_path: 'x', val_path: 'y', save_path: 'z' },
    );
    assert.deepEqual(body('augment', ['--input', 'ds', '--methods', 'CLAHE,Fog']), {
      dataset_path: 'ds',
      methods: ['CLAHE', 'Fog'],
    });
    assert.deepEqual(
      body('spectrogram', ['--input', 'rf', '--output', 'o', '--duration', '0.2', '--animation', 'gif']),
      {
        input_path: 'rf',
        output_path: 'o',
        duration_time: 0.2,
        animation: true,
        animation_format: 'gif',
      },
    );
    assert.deepEqual(
      body('infer', [
        '--cfg',
        'c.yaml',
        '--weights',
        'w.onnx',
        '--source',
        's',
        '--save',
        'r',
        '--animation',
        'gif',
      ]),
      {
        cfg_path: 'c.yaml',
        weight_path: 'w.onnx',
        source_path: 's',
        save_path: 'r',
        animation_format: 'gif',
      },
    );
    assert.deepEqual(
      body('evaluate', ['--cfg', 'c', '--weights', 'w', '--data', 'd', '--save', 's', '--device', 'cpu']),
      {
        cfg_path: 'c',
        weight_path: 'w',
        data_path: 'd',
        save_path: 's',
        device: 'cpu',
      },
    );
  });

  it('shows defaults, bounds and descriptions from the schema in --help', () => {
    const split = commandHelp(command('split'));
    assert.match(split, /--train-ratio X\s+\[0\.1 to 0\.9; default 0\.8\]/);
    assert.match(
      split,
      /--input-path, --input PATH\s+Folder with one sub-folder of images per class \[required\]/,
    );
    const spec = commandHelp(command('spectrogram'));
    assert.match(spec, /--sample-rate X\s+\[>0, <=100e9; default 100e6\]/);
    assert.match(spec, /--render matplotlib\|power/);
    assert.ok(!/--animation-format, --animation/.test(spec), '--animation is its own option here');
  });

  it('reads values as the schema types them, and says what is wrong', () => {
    const c = command('spectrogram');
    const parse = (argv: string[]) => parseArgs(argv, commandOptions(c), 'spectrogram');
    assert.equal(parse(['--ratio', '-1']).get('ratio'), -1, 'a negative number is a value');
    assert.equal(parse(['--sample-rate', '10e6']).get('sample-rate'), 10e6);
    const fails = (argv: string[], message: RegExp) =>
      assert.throws(
        () => requireOptions(parse(argv)),
        (e: unknown) => e instanceof UsageError && message.test(e.message),
      );
    fails(['--stft-point', '1.5'], /--stft-point must be an integer \(got '1\.5'\)/);
    fails(['--render', 'fancy'], /--render must be one of matplotlib, power \(got 'fancy'\)/);
    fails(['--width'], /--width needs a value/);
    fails(['--bogus', '1'], /unknown option --bogus for 'spectrogram'/);
    fails(['--input', 'x'], /--output-path\/--output is required/);
    fails(['--save-matrix=maybe'], /--save-matrix takes no value, or =true\/=false/);
  });
});
