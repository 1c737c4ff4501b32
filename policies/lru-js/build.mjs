// Builds a JavaScript eviction policy into a component with componentize-js's JS API (the
// `jco componentize` command line fails on these machines with "failed to get path
// metadata").
//
//   node build.mjs SOURCE.js WIT_DIR OUT.wasm      (policies/build: lru.js ../../wit ...)
//
// Every optional WASI feature of the engine is disabled, so the component imports nothing
// but rmhost:policy/host (the world imports it): a pure component, which traps
// instead of printing its errors; the host turns a trap into its native fallback.
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';

const [source, witPath, out] = process.argv.slice(2);
if (!source || !witPath || !out) {
  console.error('usage: node build.mjs SOURCE.js WIT_DIR OUT.wasm');
  process.exit(2);
}
const { component } = await componentize({
  sourcePath: resolve(source),
  witPath: resolve(witPath),
  worldName: 'eviction-policy',
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(resolve(out), component);
