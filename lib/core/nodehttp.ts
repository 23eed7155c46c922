/**
 * node:http, loaded with require() rather than `import`. An ESM import of a builtin builds a namespace
 * from all of its exports, and reading node:http's lazy `WebSocket`, `CloseEvent` and `MessageEvent`
 * getters loads Node's bundled undici: ~10 MiB of RSS in an agent whose whole budget is 64 MiB, for
 * exports the agent never uses. Every runtime module of the collector and the core takes http from here; types
 * may still be imported with `import type` (erased).
 */
import { createRequire } from 'node:module';
import type * as nodeHttp from 'node:http';

/** The node:http module, without its undici-backed exports touched. */
export const http = createRequire(import.meta.url)('node:http') as typeof nodeHttp;
