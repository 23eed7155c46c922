/**
 * Break-glass building blocks, one import for the operator and the CLI:
 *
 * - stop files: {@link encodeStopFile}, {@link parseStopFile}, {@link stopFileName}, {@link writeFileAtomic};
 * - transports: {@link BreakGlassTransport} with {@link LocalTransport}, {@link SshTransport},
 *   {@link ExecTransport} (their shared {@link TransportCommonOptions}), built from the spec by
 *   {@link transportFromSpec};
 * - actions: {@link issueBreakGlass}, {@link clearBreakGlass}, {@link breakGlassListing}, {@link breakGlassStatus};
 * - inventory: {@link ConfigMapInventoryStore}, {@link makeInventory}, {@link exportInventory},
 *   {@link loadInventoryFile}.
 */
export * from './stopfile.js';
export * from './transport.js';
export * from './listing.js';
export * from './common.js';
export * from './maplimit.js';
export * from './local.js';
export * from './ssh.js';
export * from './exec.js';
export * from './inventory.js';
export * from './configmapstore.js';
export * from './breakglass.js';
