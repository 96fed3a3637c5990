/**
 * docker's `image inspect` object of an image, and the short names docker shows for
 * references: kept apart from images.ts (tagging, removal, which load the store's writers) for
 * `inspect`, which only reads.
 *
 * @module
 */
import { parseReference } from "../../registry/reference.ts";
import type { ImageRecord } from "../store/mod.ts";

/** Docker's `image inspect` object. */
export interface ImageInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Parent: string;
  Comment: string;
  Created: string;
  DockerVersion: string;
  Author: string;
  Config: Record<string, unknown>;
  Architecture: string;
  Variant?: string;
  Os: string;
  Size: number;
  RootFS: { Type: string; Layers: string[] };
  Metadata: { LastTagTime: string };
}

/** The docker-shaped inspect object of an image. */
export function inspectImage(image: ImageRecord): ImageInspect {
  const c = image.config.config ?? {};
  return {
    Id: image.id,
    RepoTags: image.tags.map(familiar),
    RepoDigests: image.digests.map(familiarDigest),
    Parent: "",
    Comment: image.config.history?.at(-1)?.comment ?? "",
    Created: image.config.created ?? "0001-01-01T00:00:00Z",
    DockerVersion: "",
    Author: image.config.author ?? "",
    Config: {
      Hostname: "",
      Domainname: "",
      User: c.User ?? "",
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      ExposedPorts: c.ExposedPorts,
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      Env: c.Env ?? null,
      Cmd: c.Cmd ?? null,
      Image: "",
      Volumes: c.Volumes ?? null,
      WorkingDir: c.WorkingDir ?? "",
      Entrypoint: c.Entrypoint ?? null,
      OnBuild: null,
      Labels: c.Labels ?? null,
      StopSignal: c.StopSignal,
      Healthcheck: c.Healthcheck,
      Shell: c.Shell,
    },
    Architecture: image.config.architecture,
    ...(image.config.variant ? { Variant: image.config.variant } : {}),
    Os: image.config.os,
    Size: image.size,
    RootFS: { Type: "layers", Layers: image.layers.map((l) => l.diffId) },
    Metadata: { LastTagTime: "0001-01-01T00:00:00Z" },
  };
}

/** `docker.io/library/busybox:latest` -> `busybox:latest`. */
export function familiar(full: string): string {
  return parseReference(full).familiar();
}

/** `docker.io/library/busybox@sha256:..` -> `busybox@sha256:..`. */
export function familiarDigest(repoAtDigest: string): string {
  const [repo, digest] = repoAtDigest.split("@");
  return `${parseReference(repo).familiar().replace(/:latest$/, "")}@${digest}`;
}
