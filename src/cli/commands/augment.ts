import type { SubmitEntry } from './submit.js';

/** `rfuav augment`: augmented copies of a split dataset's train and valid images. */
export const augmentEntry: SubmitEntry = {
  kind: 'data_augmentation',
  name: 'augment',
  summary: "Write augmented copies of a split dataset's train and valid images",
  aliases: { dataset_path: ['input'], output_path: ['output'] },
};
