/** A minimal container record for the state and boot unit tests. */
import type { RunConfig } from "./state.ts";

export const CONFIG: RunConfig = {
  argv: ["sh"],
  env: [],
  cwd: "/",
  user: "",
  hostname: "h",
  network: "private",
  resources: {},
  mounts: [],
  readOnly: false,
  tty: false,
  interactive: false,
  layers: [],
  restart: { name: "no", maxRetries: 0 },
  autoRemove: false,
  stopSignal: 15,
  stopTimeout: 10,
};
