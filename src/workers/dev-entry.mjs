// Used only when the service runs from TypeScript sources under tsx (tests, `tsx src/...`):
// worker threads do not inherit tsx's module hooks, so register them here and then load the
// TypeScript entry. The build (dist/) uses the compiled entry.js directly.
import { register } from 'tsx/esm/api';

register();
const entry = await import('./entry.ts');

export const renderSlice = entry.renderSlice;
export const augmentImage = entry.augmentImage;
export const frameInput = entry.frameInput;
export const slicePreview = entry.slicePreview;
export const imageInput = entry.imageInput;
