/**
 * struct msghdr for sendmsg(2) and recvmsg(2) over unix sockets, and the fds of the SCM_RIGHTS
 * messages a receive brought: one layout for every place that hands fds across a socket.
 *
 * @module
 */

/** SOL_SOCKET: the level of an SCM_RIGHTS control message. */
export const SOL_SOCKET = 1;
/** SCM_RIGHTS: a control message carrying fds. */
export const SCM_RIGHTS = 1;

/** The address of `buf`, as the kernel's structs hold it. */
export function pointerOf(buf: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * A struct msghdr with one iovec over `data` and the control buffer `control`. It holds all
 * three buffers because the kernel reads and writes through their addresses: keep it alive until
 * the call has returned.
 */
export class MessageHeader {
  /** The struct msghdr's bytes, to pass to sendmsg/recvmsg. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  readonly #fields: BigUint64Array<ArrayBuffer>;
  readonly #iov: BigUint64Array<ArrayBuffer>;

  constructor(readonly data: Uint8Array<ArrayBuffer>, readonly control: Uint8Array<ArrayBuffer>) {
    this.#iov = new BigUint64Array([pointerOf(data), BigInt(data.length)]);
    this.#fields = new BigUint64Array(7);
    this.#fields[2] = pointerOf(new Uint8Array(this.#iov.buffer));
    this.#fields[3] = 1n;
    this.#fields[4] = pointerOf(control);
    this.#fields[5] = BigInt(control.length);
    this.bytes = new Uint8Array(this.#fields.buffer);
  }

  /** The fds of the SCM_RIGHTS messages that recvmsg wrote into the control buffer. */
  receivedFds(): number[] {
    const fds: number[] = [];
    const view = new DataView(this.control.buffer);
    const controlLen = Number(this.#fields[5]); // msg_controllen, as recvmsg left it
    for (let at = 0; at + 16 <= controlLen;) {
      const len = Number(view.getBigUint64(at, true));
      if (len < 16) break;
      if (
        view.getInt32(at + 8, true) === SOL_SOCKET && view.getInt32(at + 12, true) === SCM_RIGHTS
      ) {
        for (let i = at + 16; i + 4 <= at + len; i += 4) fds.push(view.getInt32(i, true));
      }
      at += Math.ceil(len / 8) * 8;
    }
    return fds;
  }
}
