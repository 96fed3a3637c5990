/**
 * A small client of the Kubernetes Container Runtime Interface (CRI, `runtime.v1`) for tests,
 * speaking gRPC over containerd's unix socket through node:http2, with the protobuf messages
 * written by hand: Debian 12 has no cri-tools (crictl), and the few calls a kubelet makes to run
 * one pod need only a handful of fields. Field numbers are those of the CRI's api.proto.
 *
 * @module
 */
import http2 from "node:http2";
import net from "node:net";

/** A protobuf field: number and value; nested arrays are sub-messages. */
export type Field =
  | readonly [number, "string", string]
  | readonly [number, "bytes", Uint8Array]
  | readonly [number, "varint", number]
  | readonly [number, "message", readonly Field[]]
  | readonly [number, "map", Readonly<Record<string, string>>];

function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n; // int64's two's complement
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

/** Encodes a message (fields in the order given; proto3 parsers accept any order). */
export function encode(fields: readonly Field[]): Uint8Array {
  const out: number[] = [];
  const lengthDelimited = (no: number, bytes: Uint8Array) => {
    out.push(...varint((no << 3) | 2), ...varint(bytes.length), ...bytes);
  };
  for (const f of fields) {
    switch (f[1]) {
      case "varint":
        out.push(...varint(f[0] << 3), ...varint(f[2]));
        break;
      case "string":
        lengthDelimited(f[0], new TextEncoder().encode(f[2]));
        break;
      case "bytes":
        lengthDelimited(f[0], f[2]);
        break;
      case "message":
        lengthDelimited(f[0], encode(f[2]));
        break;
      case "map":
        for (const [k, v] of Object.entries(f[2])) {
          lengthDelimited(f[0], encode([[1, "string", k], [2, "string", v]]));
        }
        break;
    }
  }
  return new Uint8Array(out);
}

/** A decoded message: each field number's values (varints as bigint, the rest as bytes). */
export class Message {
  /** The raw values by field number. */
  readonly fields = new Map<number, (bigint | Uint8Array)[]>();

  /** Parses protobuf bytes (wire types 0, 1, 2 and 5). */
  constructor(bytes: Uint8Array) {
    let i = 0;
    const readVarint = (): bigint => {
      let v = 0n;
      for (let shift = 0n;; shift += 7n) {
        const b = bytes[i++];
        v |= BigInt(b & 0x7f) << shift;
        if (!(b & 0x80)) return v;
      }
    };
    while (i < bytes.length) {
      const key = Number(readVarint());
      const no = key >> 3;
      let value: bigint | Uint8Array;
      switch (key & 7) {
        case 0:
          value = readVarint();
          break;
        case 1:
          value = bytes.slice(i, i + 8);
          i += 8;
          break;
        case 2: {
          const len = Number(readVarint());
          value = bytes.slice(i, i + len);
          i += len;
          break;
        }
        case 5:
          value = bytes.slice(i, i + 4);
          i += 4;
          break;
        default:
          throw new Error(`protobuf: wire type ${key & 7} of field ${no} not understood`);
      }
      const list = this.fields.get(no) ?? [];
      list.push(value);
      this.fields.set(no, list);
    }
  }

  private last(no: number): bigint | Uint8Array | undefined {
    return this.fields.get(no)?.at(-1);
  }

  /** A string field ("" when absent, as proto3). */
  string(no: number): string {
    const v = this.last(no);
    return v instanceof Uint8Array ? new TextDecoder().decode(v) : "";
  }

  /** A bytes field. */
  bytes(no: number): Uint8Array {
    const v = this.last(no);
    return v instanceof Uint8Array ? v : new Uint8Array();
  }

  /** A varint field as a number (int32 values sign-extended). */
  int(no: number): number {
    const v = this.last(no);
    return typeof v === "bigint" ? Number(BigInt.asIntN(64, v)) : 0;
  }

  /** A sub-message (empty when absent). */
  message(no: number): Message {
    return new Message(this.bytes(no));
  }

  /** A map<string, string> field. */
  map(no: number): Record<string, string> {
    const out: Record<string, string> = {};
    for (const v of this.fields.get(no) ?? []) {
      if (!(v instanceof Uint8Array)) continue;
      const entry = new Message(v);
      out[entry.string(1)] = entry.string(2);
    }
    return out;
  }
}

/** A gRPC call that ended with a status other than OK. */
export class CriCallError extends Error {
  /** Creates the error for `method` with gRPC `status` and its message. */
  constructor(readonly method: string, readonly status: number, detail: string) {
    super(`${method}: gRPC status ${status}: ${detail}`);
    this.name = "CriCallError";
  }
}

/** A CRI client over one HTTP/2 connection to a unix socket. */
export class CriClient {
  private readonly session: http2.ClientHttp2Session;

  /** Connects to the gRPC server at the unix socket `socket`. */
  constructor(socket: string) {
    this.session = http2.connect("http://localhost", {
      createConnection: () => net.connect(socket),
    });
    this.session.on("error", () => {/* reported by the calls that fail */});
  }

  /** One unary call: `service` is `RuntimeService` or `ImageService`. */
  call(service: string, method: string, request: readonly Field[]): Promise<Message> {
    const path = `/runtime.v1.${service}/${method}`;
    const body = encode(request);
    const frame = new Uint8Array(5 + body.length);
    new DataView(frame.buffer).setUint32(1, body.length);
    frame.set(body, 5);
    return new Promise((resolve, reject) => {
      const req = this.session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
      });
      const chunks: Uint8Array[] = [];
      let meta: Record<string, unknown> = {};
      req.on("response", (h) => meta = { ...meta, ...h });
      req.on("trailers", (t) => meta = { ...meta, ...t });
      req.on("data", (c: Uint8Array) => chunks.push(c));
      req.on("error", reject);
      req.on("end", () => {
        const status = Number(meta["grpc-status"] ?? -1);
        if (status !== 0) {
          const detail = decodeURIComponent(String(meta["grpc-message"] ?? "(no message)"));
          reject(new CriCallError(path, status, detail));
          return;
        }
        const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let o = 0;
        for (const c of chunks) {
          all.set(c, o);
          o += c.length;
        }
        resolve(new Message(all.subarray(5)));
      });
      req.end(frame);
    });
  }

  /** Closes the connection. */
  close(): void {
    this.session.close();
  }
}

/** NamespaceMode of the CRI: a pod's own, a container's own, the node's, another's. */
export const NamespaceMode = { POD: 0, CONTAINER: 1, NODE: 2, TARGET: 3 } as const;

/** ContainerState of the CRI. */
export const ContainerState = { CREATED: 0, RUNNING: 1, EXITED: 2, UNKNOWN: 3 } as const;

/** What a pod sandbox is made of, for {@link podSandboxConfig}. */
export interface PodSpec {
  readonly name: string;
  readonly uid: string;
  readonly namespace: string;
  /** Left out with the node's network: the pod then shares the node's UTS namespace too. */
  readonly hostname?: string;
  readonly logDirectory: string;
  readonly cgroupParent: string;
  /** The pod's network namespace: the node's, or one of its own (set up by CNI). */
  readonly network: typeof NamespaceMode.POD | typeof NamespaceMode.NODE;
}

/**
 * A PodSandboxConfig: metadata, hostname, log directory, cgroup parent, and the pod's
 * namespaces: `network` as asked, IPC and PID shared by the pod (its containers join the
 * sandbox's by path).
 */
export function podSandboxConfig(p: PodSpec): Field[] {
  return [
    [1, "message", [[1, "string", p.name], [2, "string", p.uid], [3, "string", p.namespace]]],
    ...(p.hostname ? [[2, "string", p.hostname] as const] : []),
    [3, "string", p.logDirectory],
    [8, "message", [
      [1, "string", p.cgroupParent],
      // security_context.namespace_options: network, pid, ipc.
      [2, "message", [[1, "message", [
        [1, "varint", p.network],
        [2, "varint", NamespaceMode.POD],
        [3, "varint", NamespaceMode.POD],
      ]]]],
    ]],
  ];
}
