/**
 * The modules the supervisor imports lazily (src/lazy.ts), registered for its bundle
 * (supervisor_bundle.ts): imported here, they are in the bundle, and {@link lazyImport} takes
 * that copy (one instance of each module, as unbundled). Static imports: the bundler cannot put
 * a dynamically imported module that shares modules with top-level awaits (network_release.ts)
 * behind a lazy wrapper, so these are evaluated with the bundle (none does more at the top
 * level than define; about 0.3 MiB). Imported by the bundle's entry only: unbundled, this would
 * have every supervisor load these graphs. supervisor_bundle_test.ts checks that this list
 * names every module the supervisor's graph imports lazily.
 *
 * @module
 */
import { registerLazy } from "../lazy.ts";
import * as m0 from "./cleanup.ts";
import * as m1 from "./health_monitor.ts";
import * as m2 from "../net/publish.ts";
import * as m3 from "../network/outbound.ts";
import * as m4 from "../../ffi/nftables.ts";
import * as m5 from "../network/mod.ts";
import * as m6 from "../network/endpoints.ts";
import * as m7 from "../network/connect.ts";
import * as m8 from "../network/ipam.ts";
import * as m9 from "../network/records.ts";
import * as m10 from "../network/firewall_ports.ts";
import * as m11 from "../builder/sweep.ts";

const here = (path: string) => new URL(path, import.meta.url);

registerLazy(here("./cleanup.ts"), () => Promise.resolve(m0));
registerLazy(here("./health_monitor.ts"), () => Promise.resolve(m1));
registerLazy(here("../net/publish.ts"), () => Promise.resolve(m2));
registerLazy(here("../network/outbound.ts"), () => Promise.resolve(m3));
registerLazy(here("../../ffi/nftables.ts"), () => Promise.resolve(m4));
registerLazy(here("../network/mod.ts"), () => Promise.resolve(m5));
registerLazy(here("../network/endpoints.ts"), () => Promise.resolve(m6));
registerLazy(here("../network/connect.ts"), () => Promise.resolve(m7));
registerLazy(here("../network/ipam.ts"), () => Promise.resolve(m8));
registerLazy(here("../network/records.ts"), () => Promise.resolve(m9));
registerLazy(here("../network/firewall_ports.ts"), () => Promise.resolve(m10));
registerLazy(here("../builder/sweep.ts"), () => Promise.resolve(m11));
