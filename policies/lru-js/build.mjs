// Builds lru.js into a component with componentize-js's JS API (the `jco componentize`
// command line fails on these machines with "failed to get path metadata").
//
//   node build.mjs WIT_DIR OUT.wasm
//
// Every optional WASI feature of the engine is disabled, so the component imports nothing
// but rmhost:policy/host (and only what lru.js uses of it): a pure component, which traps
// instead of printing its errors; the host turns a trap into its native fallback.
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

const [witPath, out] = process.argv.slice(2);
if (!witPath || !out) {
  console.error('usage: node build.mjs WIT_DIR OUT.wasm');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const { component } = await componentize({
  sourcePath: join(here, 'lru.js'),
  witPath: resolve(witPath),
  worldName: 'eviction-policy',
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(resolve(out), component);
