/** The one worker-thread entry file: Piscina picks the export by name (see WorkerPool). */
export { renderSlice, frameInput, slicePreview } from './slice-worker.js';
export { imageInput } from '../engines/preprocess/image.js';
export { augmentImage } from '../augment/image-task.js';
