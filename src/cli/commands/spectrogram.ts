import type { SubmitEntry } from './submit.js';

/** `rfuav spectrogram`: raw IQ recordings into spectrogram images (and animations). */
export const spectrogramEntry: SubmitEntry = {
  kind: 'spectrogram',
  name: 'spectrogram',
  summary: 'Turn raw IQ recordings into spectrogram images, as the reference draws them',
  aliases: { input_path: ['input'], output_path: ['output'], duration_time: ['duration'] },
  // `--animation gif` has always meant "an animation, as a GIF": one flag for two fields.
  extra: (fields) => {
    const format = fields.find((o) => o.field === 'animation_format');
    return [
      {
        replaces: 'animation',
        option: {
          name: 'animation',
          type: 'string',
          enum: format?.enum,
          placeholder: format?.placeholder,
          description:
            "Also write each recording's frames as one animated image in this format (sets animation)",
        },
        apply: (value, body) => {
          body.animation = true;
          body.animation_format = value;
        },
      },
    ];
  },
};
