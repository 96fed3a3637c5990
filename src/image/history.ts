/**
 * `history`: an image's build steps from its config, newest first, each non-empty step matched
 * in order to the layer it produced.
 *
 * @module
 */
import type { ImageRecord } from "../store/mod.ts";

/** One step of an image's history. */
export interface HistoryRow {
  /** The image id for the newest step, `<missing>` for the rest (docker keeps no parents). */
  readonly id: string;
  /** When the step ran (RFC 3339), if recorded. */
  readonly created?: string;
  /** The command that made the step. */
  readonly createdBy: string;
  /** Uncompressed size of the layer the step added; 0 for steps without a layer. */
  readonly size: number;
  readonly comment: string;
  /** Whether the step produced a layer. */
  readonly emptyLayer: boolean;
}

/**
 * The history of an image, newest first. Steps marked `empty_layer` get size 0; the others take
 * the image's layers bottom-up in order. Layers the history does not account for (images built
 * without history) get rows of their own, as docker shows them.
 */
export function imageHistory(image: ImageRecord): HistoryRow[] {
  const entries = image.config.history ?? [];
  const rows: HistoryRow[] = [];
  let layer = 0;
  for (const h of entries) {
    const empty = h.empty_layer === true;
    const size = empty ? 0 : image.layers[layer]?.size ?? 0;
    if (!empty) layer++;
    rows.push({
      id: "<missing>",
      created: h.created,
      createdBy: h.created_by ?? "",
      size,
      comment: h.comment ?? "",
      emptyLayer: empty,
    });
  }
  for (; layer < image.layers.length; layer++) {
    rows.push({
      id: "<missing>",
      created: image.created,
      createdBy: "",
      size: image.layers[layer].size,
      comment: "",
      emptyLayer: false,
    });
  }
  rows.reverse();
  if (rows.length > 0) rows[0] = { ...rows[0], id: image.id };
  return rows;
}
