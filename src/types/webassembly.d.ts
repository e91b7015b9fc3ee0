// Node has the WebAssembly global, but TypeScript declares it only in the DOM libraries, which
// this project does not load. These are the parts the STFT uses.
declare namespace WebAssembly {
  class Memory {
    constructor(descriptor: { initial: number; maximum?: number });
    readonly buffer: ArrayBuffer;
  }
  class Module {}
  class Instance {
    readonly exports: Record<string, unknown>;
  }
  type Imports = Record<string, Record<string, unknown>>;
  function instantiate(
    bytes: ArrayBufferView | ArrayBuffer,
    imports?: Imports,
  ): Promise<{ instance: Instance; module: Module }>;
}
