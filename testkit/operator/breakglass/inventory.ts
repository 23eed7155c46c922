/**
 * An in-memory inventory store for unit tests, in place of the ConfigMap-backed store the operator
 * uses (operator/src/breakglass/inventory.ts).
 */
import { inventoryHash, type InventoryStore, type NodeInventory, type SaveResult } from '../../../operator/src/breakglass/inventory.js';

/** An in-memory {@link InventoryStore} for unit tests; counts its writes. */
export class MemoryInventoryStore implements InventoryStore {
  /** Number of saves that wrote. */
  writes = 0;
  private readonly items = new Map<string, { inv: NodeInventory; hash: string }>();

  async load(cluster: string): Promise<NodeInventory | undefined> {
    const item = this.items.get(cluster);
    return item === undefined ? undefined : structuredClone(item.inv);
  }

  async save(inv: NodeInventory): Promise<SaveResult> {
    const hash = inventoryHash(inv);
    if (this.items.get(inv.cluster)?.hash === hash) return { written: false, hash };
    this.items.set(inv.cluster, { inv: structuredClone(inv), hash });
    this.writes++;
    return { written: true, hash, objects: 1 };
  }

  async delete(cluster: string): Promise<void> {
    this.items.delete(cluster);
  }
}
