// `testTimeout` is a global jest option that projects ignore, so the e2e project sets its own here:
// real control-plane scenarios (rollouts with bakes, operator restarts) take minutes.
import { jest } from '@jest/globals';

jest.setTimeout(900_000);
