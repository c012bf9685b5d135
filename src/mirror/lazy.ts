import type { MirrorConfig } from '../config/index.js';
import type { ModelMirror } from './store.js';

export interface LazyMirror {
  get(): Promise<ModelMirror>;
  close(): void;
}

/**
 * The mirror's client, loaded on first use: the AWS SDK takes about 0.3 s and 25 MiB to load,
 * and only pods with a mirror need it (every process imports the workers' code).
 */
export function lazyMirror(config: MirrorConfig): LazyMirror {
  let mirror: Promise<ModelMirror> | undefined;
  return {
    get() {
      mirror ??= import('./store.js').then(({ ModelMirror }) => new ModelMirror(config));
      return mirror;
    },
    close() {
      void mirror?.then((m) => m.close()).catch(() => undefined);
    },
  };
}
