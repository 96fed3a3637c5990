/**
 * Whether this host can run another architecture's programs: through a binfmt_misc handler
 * (Debian's qemu-user-static registers `qemu-aarch64` and its siblings), as docker and podman
 * run foreign images. The handler must be enabled and registered with the F ("fix binary")
 * flag: the kernel then opens the interpreter once, at registration, so it runs inside a
 * container whose mount namespace has no /usr/libexec/qemu-binfmt. Without F the kernel looks
 * the interpreter up in the container's root at every exec and the program fails with ENOENT.
 *
 * The check reads the handlers the kernel lists and matches each one's magic and mask against
 * the ELF header of an executable of the wanted platform, as the kernel matches a program.
 *
 * @module
 */
import { formatPlatform, normalizePlatform, type Platform } from "../../registry/platform.ts";
import { TsboxError } from "../errors.ts";

/** Where binfmt_misc is mounted (systemd and binfmt-support mount it here). */
export const BINFMT_MISC = "/proc/sys/fs/binfmt_misc";

/** This host cannot run the platform's programs; the message names what is missing. */
export class EmulationError extends TsboxError {
  constructor(readonly platform: Platform, reason: string) {
    super(`${formatPlatform(platform)} programs cannot run on this host: ${reason}`);
    this.name = "EmulationError";
  }
}

/** ELF class (1 = 32-bit, 2 = 64-bit), byte order (1 = LE, 2 = BE), e_machine, qemu's name. */
const ELF: Record<string, [cls: number, data: number, machine: number, qemu: string]> = {
  amd64: [2, 1, 0x3e, "x86_64"],
  "386": [1, 1, 0x03, "i386"],
  arm64: [2, 1, 0xb7, "aarch64"],
  arm: [1, 1, 0x28, "arm"],
  ppc64le: [2, 1, 0x15, "ppc64le"],
  ppc64: [2, 2, 0x15, "ppc64"],
  s390x: [2, 2, 0x16, "s390x"],
  riscv64: [2, 1, 0xf3, "riscv64"],
  mips64le: [2, 1, 0x08, "mips64el"],
  loong64: [2, 1, 0x102, "loongarch64"],
};

/** The first 20 bytes of an executable (ET_EXEC) of `platform`, or undefined if unknown. */
export function elfHeader(platform: Platform): Uint8Array | undefined {
  const e = ELF[normalizePlatform(platform).architecture];
  if (!e) return undefined;
  const [cls, data, machine] = e;
  const h = new Uint8Array(20);
  h.set([0x7f, 0x45, 0x4c, 0x46, cls, data, 1]);
  const view = new DataView(h.buffer);
  view.setUint16(16, 2, data === 1); // e_type ET_EXEC
  view.setUint16(18, machine, data === 1);
  return h;
}

/** One handler as the kernel lists it (`/proc/sys/fs/binfmt_misc/NAME`). */
export interface BinfmtHandler {
  readonly name: string;
  readonly enabled: boolean;
  readonly interpreter: string;
  readonly flags: string;
  readonly offset: number;
  readonly magic?: Uint8Array;
  readonly mask?: Uint8Array;
}

function hex(text: string | undefined): Uint8Array | undefined {
  if (text === undefined || !/^([0-9a-f]{2})*$/i.test(text)) return undefined;
  return Uint8Array.from(text.match(/../g) ?? [], (b) => parseInt(b, 16));
}

/** Parses a handler file's text (`enabled`, `interpreter`, `flags:`, `offset`, `magic`, `mask`). */
export function parseHandler(name: string, text: string): BinfmtHandler {
  const lines = text.split("\n");
  const field = (key: string) => {
    const line = lines.find((l) => l.startsWith(`${key} `) || l === key);
    return line === undefined ? undefined : line.slice(key.length).trim();
  };
  return {
    name,
    enabled: lines[0]?.trim() === "enabled",
    interpreter: field("interpreter") ?? "",
    flags: field("flags:") ?? "",
    offset: Number(field("offset") ?? 0),
    magic: hex(field("magic")),
    mask: hex(field("mask")),
  };
}

/** Whether `h` (a magic handler) matches a program starting with `header`, as the kernel does. */
export function handlerMatches(h: BinfmtHandler, header: Uint8Array): boolean {
  if (!h.magic || h.magic.length === 0) return false; // an extension handler
  if (h.offset + h.magic.length > header.length) return false;
  for (let i = 0; i < h.magic.length; i++) {
    const m = h.mask ? h.mask[i] : 0xff;
    if (((header[h.offset + i] ^ h.magic[i]) & m) !== 0) return false;
  }
  return true;
}

/**
 * Checks that programs of `platform` can run here through a binfmt_misc handler under `dir`
 * and returns that handler; throws an {@link EmulationError} naming what is missing: binfmt_misc
 * not mounted, no handler (Debian's qemu-user-static), a disabled one or one without the F flag.
 */
export function checkEmulation(platform: Platform, dir = BINFMT_MISC): BinfmtHandler {
  const header = elfHeader(platform);
  const arch = normalizePlatform(platform).architecture;
  if (normalizePlatform(platform).os !== "linux" || !header) {
    throw new EmulationError(platform, "tsbox runs Linux programs of known architectures only");
  }
  const qemu = `qemu-${ELF[arch][3]}`;
  const install = `install Debian's qemu-user-static, which registers ${qemu}`;
  let status: string;
  try {
    status = Deno.readTextFileSync(`${dir}/status`).trim();
  } catch {
    throw new EmulationError(
      platform,
      `binfmt_misc is not mounted at ${dir} (mount -t binfmt_misc binfmt_misc ${dir}; then ${install})`,
    );
  }
  if (status !== "enabled") {
    throw new EmulationError(platform, `binfmt_misc is disabled (echo 1 > ${dir}/status)`);
  }
  const handlers: BinfmtHandler[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.name === "register" || e.name === "status") continue;
    try {
      handlers.push(parseHandler(e.name, Deno.readTextFileSync(`${dir}/${e.name}`)));
    } catch {
      // Unregistered meanwhile.
    }
  }
  const matching = handlers.filter((h) => handlerMatches(h, header)).sort((a, b) =>
    Number(b.enabled) - Number(a.enabled) ||
    Number(b.flags.includes("F")) - Number(a.flags.includes("F"))
  );
  const h = matching[0];
  if (!h) {
    throw new EmulationError(
      platform,
      `no binfmt_misc handler for ${ELF[arch][3]} programs is registered in ${dir} (${install})`,
    );
  }
  if (!h.enabled) {
    throw new EmulationError(
      platform,
      `the binfmt_misc handler ${h.name} is disabled (echo 1 > ${dir}/${h.name})`,
    );
  }
  if (!h.flags.includes("F")) {
    throw new EmulationError(
      platform,
      `the binfmt_misc handler ${h.name} lacks the F flag, so a container cannot reach its ` +
        `interpreter ${h.interpreter} (register it again with flags F, as Debian's ` +
        `qemu-user-static does in /usr/lib/binfmt.d/${qemu}.conf)`,
    );
  }
  return h;
}
