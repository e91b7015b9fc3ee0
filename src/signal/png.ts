/**
 * zlib level for the PNGs the service writes (spectrograms, augmented copies). Encoding is the
 * largest part of a slice's time after the STFT: for a 1920×1440 spectrogram here, level 6 takes ~230 ms and 2.7 MB, level 3 ~130 ms and 2.8 MB,
 * level 2 ~100 ms and 3.0 MB (docs/PERFORMANCE.md). Lossless at every level.
 */
export const PNG_COMPRESSION = 2;
