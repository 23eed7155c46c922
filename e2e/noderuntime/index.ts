/** The e2e node runtime: a real collector agent for every collector pod kwok runs. See runtime.ts. */
export { STOP_FILE_IN_NODE, type AgentInfo, type NodeRuntime, type NodeRuntimeOptions } from './api.js';
export { startNodeRuntime } from './runtime.js';
export { desiredAgent, agentConfig, type DesiredAgent } from './pods.js';
