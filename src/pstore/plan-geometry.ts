/**
 * Geometry for commands that create a layout (layout, format --headers) rather than read one:
 * nothing can be detected from the disk, so missing sizes follow the kernel's Kconfig defaults,
 * and every assumption is reported.
 */
import type { Layout } from './layout.js';
import { computeLayout, normaliseSizes } from './layout.js';
import type { PstoreParams, SizeParam, Sourced } from './params.js';
import { KCONFIG_DEFAULTS } from './params.js';

export interface PlannedGeometry {
  layout: Layout;
  values: Record<SizeParam | 'cpus', Sourced<number>>;
  assumptions: string[];
}

export function planGeometry(regionSize: number, params: PstoreParams): PlannedGeometry {
  const assumptions: string[] = [];
  const get = (k: SizeParam): Sourced<number> => {
    if (params[k]) return params[k]!;
    if (k === 'kmsg_size') {
      assumptions.push(`kmsg_size not given: using the Kconfig default ${KCONFIG_DEFAULTS.kmsg_size} KiB`);
      return { value: KCONFIG_DEFAULTS.kmsg_size, source: 'kconfig-default' };
    }
    assumptions.push(
      `${k} not given: assuming the board kernel lacks CONFIG_PSTORE_${k.replace('_size', '').toUpperCase()} (0); ` +
        `if it is built in, its default is 64 KiB — pass --${k.replace('_', '-')} or --kconfig, or boot with the command line below, which makes every size explicit`,
    );
    return { value: 0, source: 'kconfig-default' };
  };
  const values = {
    kmsg_size: get('kmsg_size'),
    pmsg_size: get('pmsg_size'),
    console_size: get('console_size'),
    ftrace_size: get('ftrace_size'),
    cpus: params.cpus ?? { value: 1, source: 'default' as const },
  };
  if (values.ftrace_size.value > 0 && !params.cpus) assumptions.push("cpus not given: the ftrace area is split for 1 CPU; pass --cpus with the board kernel's possible-CPU count");
  const warnings: string[] = [];
  const sizes = normaliseSizes(
    { kmsg_size: values.kmsg_size.value, pmsg_size: values.pmsg_size.value, console_size: values.console_size.value, ftrace_size: values.ftrace_size.value },
    warnings,
  );
  return { layout: computeLayout(regionSize, sizes, values.cpus.value, warnings), values, assumptions };
}
