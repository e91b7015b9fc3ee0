/** The one worker-thread entry file: Piscina picks the export by name (see WorkerPool). */
export { renderSlice } from '../signal/slice-worker.js';
export { augmentImage } from '../augment/image-task.js';
