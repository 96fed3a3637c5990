/**
 * How template data says what Go value it stands for. Small and free of the evaluator, so the
 * commands can build their rows without loading it.
 *
 * @module
 */

/** Marks an object as a Go struct; the value is its type name in messages. */
export const GO_TYPE: unique symbol = Symbol("goType");

/** A Go map (a missing key prints `<no value>`), optionally with methods such as `Label`. */
export class GoMap extends Map<string, unknown> {
  constructor(
    entries?: Iterable<readonly [string, unknown]> | null,
    readonly methods: Record<string, (...args: unknown[]) => unknown> = {},
  ) {
    super(entries ?? undefined);
  }

  /** Go's nil map: empty when read, `null` in JSON. */
  static nil(): GoMap {
    const m = new GoMap();
    m.isNil = true;
    return m;
  }

  /** This is a nil map (see {@link GoMap.nil}). */
  isNil = false;
}

/** A docker formatter row: a Go struct whose fields are methods computed when asked for. */
export type Row = Record<string, unknown> & { [GO_TYPE]: string };
