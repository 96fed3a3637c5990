/**
 * What `ps --format` and `ps --size` need beyond the default table (ps_action.ts), loaded
 * only when given: each `--format` field, the SIZE column.
 *
 * @module
 */
import { labelsColumn } from "../container/labels.ts";
import { containerDir } from "../container/paths.ts";
import type { ContainerRecord } from "../container/state.ts";
import { treeSize, volumeData, volumeMountsOf } from "../container/volumes.ts";
import { portsColumn } from "../net/port_views.ts";
import type { Store } from "../store/mod.ts";
import { networkNames } from "./container_filters.ts";
import { ago, ellipsis, goTime, humanSize } from "./format.ts";
import { commandText, statusText } from "./ps_action.ts";
import { GO_TYPE, type Row } from "./template/values.ts";

/**
 * docker's SIZE column: the container's own files (its upper dir) and, with the image's,
 * `X (virtual Y)`.
 */
export function sizeText(store: Store, c: ContainerRecord): string {
  const rw = treeSize(`${containerDir(store.root, c.id)}/upper`);
  const image = store.findImage(c.imageId)?.size ?? 0;
  return image > 0 ? `${humanSize(rw)} (virtual ${humanSize(rw + image)})` : humanSize(rw);
}

/** A `ps --format` row: docker's ContainerContext, each field computed when used. */
export function psRow(store: Store, c: ContainerRecord, trunc: boolean): Row {
  const labels = c.config.labels ?? {};
  const volumes = () => volumeMountsOf(store, c.id);
  return {
    [GO_TYPE]: "*formatter.ContainerContext",
    Command: () => commandText(c, trunc),
    CreatedAt: () => goTime(c.createdAt),
    ID: () => trunc ? c.id.slice(0, 12) : c.id,
    Image: () => c.imageName,
    Labels: () => labelsColumn(labels),
    LocalVolumes: () => String(volumes().length),
    Mounts: () => {
      const byData = new Map(volumes().map((v) => [volumeData(store.root, v.name), v.name]));
      return c.config.mounts.flatMap((m) =>
        m.kind === "bind" ? [byData.get(m.source) ?? m.source] : []
      )
        .map((name) => trunc ? ellipsis(name, 15) : name).join(",");
    },
    Names: () => c.name,
    Networks: () => networkNames(c).join(","),
    Ports: () => portsColumn(store, c),
    RunningFor: () => ago(c.createdAt),
    Size: () => sizeText(store, c),
    State: () => c.state,
    Status: () => statusText(c),
    Label: (name: unknown) => labels[String(name)] ?? "",
  };
}
