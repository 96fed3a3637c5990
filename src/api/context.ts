/**
 * What every endpoint works with: the store (the one source of truth, shared with every tsbox
 * process and supervisor), the global options the CLI would have, and the exit codes the
 * service saw reported for containers removed at exit.
 *
 * @module
 */
import type { GlobalOptions } from "../cli/globals.ts";
import type { Store } from "../store/mod.ts";
import type { ExecInstance } from "./exec.ts";

/** The service's state: nothing in it is lost when the service dies. */
export interface ApiContext {
  readonly store: Store;
  readonly globals: GlobalOptions;
  /** Exit codes supervisors reported, for `wait?condition=removed` (kept for a minute). */
  readonly exitCodes: Map<string, number>;
  /** Exec instances this service made (`POST /containers/{id}/exec`). */
  readonly execs: Map<string, ExecInstance>;
  /** The service's log; none when absent. */
  readonly log?: (line: string) => void;
}
