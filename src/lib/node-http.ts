// node:http and node:https without an ES-module import of them. An `import`
// of node:http builds the module's namespace, which reads every export, and
// so runs its lazy getters too: WebSocket, CloseEvent and MessageEvent load
// Node's bundled undici (about 14 MiB of resident memory and 150 ms at
// start). process.getBuiltinModule returns the same module objects without
// touching those getters. Types still come from `import type`.
export const http: typeof import('node:http') = process.getBuiltinModule('node:http');
export const https: typeof import('node:https') = process.getBuiltinModule('node:https');
