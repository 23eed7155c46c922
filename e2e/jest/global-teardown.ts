/** Jest global teardown for e2e: replaced by the fleet harness (issue 3). */
export default async function globalTeardown(): Promise<void> {}
