/**
 * What every chaos run sets up and undoes: network namespaces for partitions when the machine
 * allows them, where the nodes run, and the healing after the faults.
 *
 * @module
 */
import { type ChaosDeployment, LOOPBACK, type Placement } from "./_deployment.ts";
import { NetLab } from "./_netns.ts";

/** The run's network: a lab of namespaces (partitions possible) or the host's loopback. */
export interface ChaosNetwork {
  /** The namespaces, when the machine allows them. */
  readonly lab: NetLab | undefined;
  /** Why partitions are not injected, or "" when they are. */
  readonly partitionsSkipped: string;
  /** Where each node runs. */
  readonly placement: Placement;
}

/** Namespaces for `nodes` when `partitions` is `auto` and the machine allows them. */
export async function chaosNetwork(
  nodes: readonly string[],
  partitions: "auto" | "off" = "auto",
): Promise<ChaosNetwork> {
  let lab: NetLab | undefined;
  let partitionsSkipped = "";
  if (partitions === "off") {
    partitionsSkipped = "partitions turned off";
  } else {
    const available = await NetLab.available();
    if (available.ok) lab = await NetLab.create([...nodes]);
    else partitionsSkipped = available.reason;
  }
  const placement: Placement = lab === undefined ? LOOPBACK : {
    host: (id) => lab!.address(id),
    wrap: (id, argv) => lab!.wrap(id, argv),
  };
  return { lab, partitionsSkipped, placement };
}

/** Undoes every fault: cuts healed, paused nodes resumed, stopped ones started; then leaders. */
export async function healAll(d: ChaosDeployment, lab: NetLab | undefined): Promise<void> {
  await lab?.heal();
  for (const id of d.nodeIds) {
    if (d.paused(id)) d.resume(id);
    if (!d.running(id)) d.start(id);
  }
  await d.waitForLeaders();
}
