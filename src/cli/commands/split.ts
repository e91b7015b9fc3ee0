import type { SubmitEntry } from './submit.js';

/** `rfuav split`: a class-per-folder image set into train/valid[/test]. */
export const splitEntry: SubmitEntry = {
  kind: 'dataset_split',
  name: 'split',
  summary: 'Split a class-per-folder image set into train/valid[/test]',
  aliases: { input_path: ['input'], output_path: ['output'] },
};
