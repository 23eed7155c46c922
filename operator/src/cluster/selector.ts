/**
 * Kubernetes label selector semantics (metav1.LabelSelector) for `spec.targets.selector`: matchLabels
 * and matchExpressions (In, NotIn, Exists, DoesNotExist) are ANDed; an empty selector matches every
 * object, as in Kubernetes.
 */
import { TerminalError } from '../util/errors.js';

/** One set-based requirement. */
export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

/** The selector shape shared by `spec.targets.selector` and metav1.LabelSelector. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/**
 * Throws a {@link TerminalError} (reason `InvalidSelector`) for a selector Kubernetes would reject: In
 * and NotIn need values, Exists and DoesNotExist take none, an unknown operator. The CRD's schema
 * should have caught these; checking again keeps a bad object from selecting the wrong clusters.
 */
export function validateSelector(sel: LabelSelector): void {
  for (const [i, r] of (sel.matchExpressions ?? []).entries()) {
    const where = `spec.targets.selector.matchExpressions[${i}] (key ${JSON.stringify(r.key)})`;
    switch (r.operator) {
      case 'In':
      case 'NotIn':
        if (!r.values || r.values.length === 0) throw new TerminalError('InvalidSelector', `${where}: operator ${r.operator} needs values`);
        break;
      case 'Exists':
      case 'DoesNotExist':
        if (r.values && r.values.length > 0) throw new TerminalError('InvalidSelector', `${where}: operator ${r.operator} takes no values`);
        break;
      default:
        throw new TerminalError('InvalidSelector', `${where}: unknown operator ${JSON.stringify(r.operator)}`);
    }
  }
}

/** Whether `labels` satisfy `sel` (see the file comment). The selector must be valid ({@link validateSelector}). */
export function matchesSelector(labels: Record<string, string> | undefined, sel: LabelSelector): boolean {
  const l = labels ?? {};
  const has = (k: string) => Object.prototype.hasOwnProperty.call(l, k);
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    if (!has(k) || l[k] !== v) return false;
  }
  for (const r of sel.matchExpressions ?? []) {
    const present = has(r.key);
    switch (r.operator) {
      case 'In':
        if (!present || !(r.values ?? []).includes(l[r.key] as string)) return false;
        break;
      case 'NotIn':
        // As in Kubernetes: an object without the label satisfies NotIn.
        if (present && (r.values ?? []).includes(l[r.key] as string)) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
    }
  }
  return true;
}

/**
 * The selector in the API's string form (`a=b,c in (d,e),!f`), for a server-side `labelSelector` query
 * that narrows a LIST. Values are assumed to be valid label values (no commas or parentheses).
 */
export function selectorString(sel: LabelSelector): string {
  const parts: string[] = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const r of sel.matchExpressions ?? []) {
    const values = [...(r.values ?? [])].sort().join(',');
    if (r.operator === 'In') parts.push(`${r.key} in (${values})`);
    else if (r.operator === 'NotIn') parts.push(`${r.key} notin (${values})`);
    else if (r.operator === 'Exists') parts.push(r.key);
    else parts.push(`!${r.key}`);
  }
  return parts.join(',');
}
