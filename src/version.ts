/** tsbox's version, printed by `--version` and sent as the registry User-Agent. */
export const VERSION = "0.1.0";
