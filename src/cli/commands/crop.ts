import type { SubmitEntry } from './submit.js';

/** `rfuav crop`: one image, or a folder of them, cropped to a rectangle. */
export const cropEntry: SubmitEntry = {
  kind: 'image_crop',
  name: 'crop',
  summary: 'Crop an image, or every image of a folder, to a rectangle',
  aliases: { input_path: ['input'], output_path: ['output'] },
};
