/**
 * Image references, normalised the way docker does it (the grammar of distribution's
 * `reference` package): `nginx` is `docker.io/library/nginx:latest`, `user/app` lives on Docker
 * Hub, and a first component with a dot, a colon or equal to `localhost` names a registry host.
 *
 * @module
 */

/** The registry domain docker assumes when a reference names none. */
export const DEFAULT_DOMAIN = "docker.io";
/** The host actually contacted for {@link DEFAULT_DOMAIN}. */
export const DOCKER_HUB_HOST = "registry-1.docker.io";
/** The tag used when a reference has neither a tag nor a digest. */
export const DEFAULT_TAG = "latest";

const LEGACY_DEFAULT_DOMAIN = "index.docker.io";
const OFFICIAL_REPO_PREFIX = "library/";
const NAME_TOTAL_LENGTH_MAX = 255;

// The pieces of distribution's grammar, kept as strings so they compose like the original.
const ALNUM = "[a-z0-9]+";
const SEPARATOR = "(?:[._]|__|[-]+)";
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
const IPV6 = "\\[(?:[a-fA-F0-9:]+)\\]";
const HOST = `(?:${DOMAIN_NAME}|${IPV6})`;
const DOMAIN = `${HOST}(?::[0-9]+)?`;
const TAG = "[\\w][\\w.-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
const NAME = `(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*`;

const REFERENCE_RE = new RegExp(`^(${NAME})(?::(${TAG}))?(?:@(${DIGEST}))?$`);
const ANCHORED_DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const ANCHORED_TAG_RE = new RegExp(`^${TAG}$`);
const ANCHORED_DIGEST_RE = new RegExp(`^${DIGEST}$`);
const ANCHORED_IDENTIFIER_RE = /^[a-f0-9]{64}$/;

/** Digest algorithms whose encoded length is fixed, checked like go-digest does. */
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

/** A reference that does not follow the grammar; `reason` says which rule it broke. */
export class InvalidReferenceError extends Error {
  constructor(readonly input: string, readonly reason: string) {
    super(`invalid reference format: ${reason}: ${JSON.stringify(input)}`);
    this.name = "InvalidReferenceError";
  }
}

/** A fully normalised image reference. */
export class Reference {
  /** Registry domain as written (after normalisation), e.g. `docker.io`, `localhost:5000`. */
  readonly domain: string;
  /** Repository path inside the registry, e.g. `library/nginx`. */
  readonly path: string;
  /** Tag, if any. `parseReference` fills in `latest` when neither tag nor digest is given. */
  readonly tag?: string;
  /** Digest such as `sha256:...`; when present it wins over the tag for fetching. */
  readonly digest?: string;

  constructor(domain: string, path: string, tag?: string, digest?: string) {
    this.domain = domain;
    this.path = path;
    if (tag !== undefined) this.tag = tag;
    if (digest !== undefined) this.digest = digest;
  }

  /** `domain/path`, e.g. `docker.io/library/nginx`. */
  get repository(): string {
    return `${this.domain}/${this.path}`;
  }

  /** What to ask the registry's manifest endpoint for: the digest if known, else the tag. */
  get identifier(): string {
    return this.digest ?? this.tag ?? DEFAULT_TAG;
  }

  /** The full form, e.g. `docker.io/library/nginx:latest`. */
  toString(): string {
    return this.repository + suffix(this);
  }

  /** Docker's short form, e.g. `nginx:latest`, `user/app:1.2`, `host:5000/app:tag`. */
  familiar(): string {
    return familiarRepository(this) + suffix(this);
  }

  /** The same repository with another tag (the digest is dropped: it belonged to the old one). */
  withTag(tag: string): Reference {
    return withTag(this, tag);
  }

  /** The same repository and tag, pinned to a digest. */
  withDigest(digest: string): Reference {
    return withDigest(this, digest);
  }
}

function suffix(ref: Reference): string {
  return (ref.tag !== undefined ? `:${ref.tag}` : "") +
    (ref.digest !== undefined ? `@${ref.digest}` : "");
}

/**
 * Splits off the registry domain the way docker does: the part before the first `/` is a
 * domain only if it contains `.` or `:`, is `localhost`, or has uppercase letters.
 */
function splitDomain(name: string): [string, string] {
  const i = name.indexOf("/");
  let domain: string;
  let remainder: string;
  if (
    i === -1 ||
    (!/[.:]/.test(name.slice(0, i)) && name.slice(0, i) !== "localhost" &&
      name.slice(0, i).toLowerCase() === name.slice(0, i))
  ) {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  } else {
    domain = name.slice(0, i);
    remainder = name.slice(i + 1);
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes("/")) {
    remainder = OFFICIAL_REPO_PREFIX + remainder;
  }
  return [domain, remainder];
}

/** Checks a digest's algorithm and encoded length; returns a reason when it is invalid. */
export function validateDigest(digest: string): string | undefined {
  if (!ANCHORED_DIGEST_RE.test(digest)) return "invalid digest format";
  const [algorithm, encoded] = digest.split(":", 2);
  const want = DIGEST_HEX_LENGTH[algorithm];
  if (want === undefined) return `unsupported digest algorithm ${algorithm}`;
  if (encoded.length !== want) return `invalid ${algorithm} digest length`;
  if (encoded !== encoded.toLowerCase()) return "digest must be lowercase hex";
  return undefined;
}

/**
 * Parses and normalises an image reference like docker's `ParseNormalizedNamed` followed by
 * `TagNameOnly`: a reference without tag and digest gets the tag `latest`.
 *
 * @throws {InvalidReferenceError} with the rule the input broke.
 */
export function parseReference(s: string): Reference {
  if (s === "") {
    throw new InvalidReferenceError(s, "repository name must have at least one component");
  }
  if (ANCHORED_IDENTIFIER_RE.test(s)) {
    throw new InvalidReferenceError(s, "cannot specify 64-byte hexadecimal strings as a name");
  }
  const [domain, remainder] = splitDomain(s);
  // The name part ends at the tag's colon or the digest's @; only it must be lowercase.
  const at = remainder.indexOf("@");
  const beforeDigest = at === -1 ? remainder : remainder.slice(0, at);
  const colon = beforeDigest.indexOf(":");
  const remoteName = colon === -1 ? beforeDigest : beforeDigest.slice(0, colon);
  if (remoteName.toLowerCase() !== remoteName) {
    throw new InvalidReferenceError(s, `repository name (${remoteName}) must be lowercase`);
  }
  const full = `${domain}/${remainder}`;
  const m = REFERENCE_RE.exec(full);
  if (!m) {
    if (REFERENCE_RE.test(full.toLowerCase())) {
      throw new InvalidReferenceError(s, "repository name must be lowercase");
    }
    throw new InvalidReferenceError(s, "does not match the reference grammar");
  }
  const [, name, tag, digest] = m;
  if (name.length > NAME_TOTAL_LENGTH_MAX) {
    throw new InvalidReferenceError(
      s,
      `repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`,
    );
  }
  if (digest !== undefined) {
    const reason = validateDigest(digest);
    if (reason) throw new InvalidReferenceError(s, reason);
  }
  const path = name.slice(domain.length + 1);
  return new Reference(
    domain,
    path,
    tag ?? (digest === undefined ? DEFAULT_TAG : undefined),
    digest,
  );
}

/** Docker's short repository name: `nginx`, `user/app`, `host:5000/app`. */
export function familiarRepository(ref: Reference): string {
  if (ref.domain !== DEFAULT_DOMAIN) return ref.repository;
  const rest = ref.path.slice(OFFICIAL_REPO_PREFIX.length);
  if (ref.path.startsWith(OFFICIAL_REPO_PREFIX) && !rest.includes("/")) return rest;
  return ref.path;
}

/** `ref` with `tag` as its tag and no digest. */
export function withTag(ref: Reference, tag: string): Reference {
  if (!ANCHORED_TAG_RE.test(tag)) throw new InvalidReferenceError(tag, "invalid tag format");
  return new Reference(ref.domain, ref.path, tag);
}

/** `ref` pinned to `digest`, keeping its tag. */
export function withDigest(ref: Reference, digest: string): Reference {
  const reason = validateDigest(digest);
  if (reason) throw new InvalidReferenceError(digest, reason);
  return new Reference(ref.domain, ref.path, ref.tag, digest);
}

/** True when `domain` is a syntactically valid registry domain (host with optional port). */
export function isValidDomain(domain: string): boolean {
  return ANCHORED_DOMAIN_RE.test(domain);
}

/** The host to contact for a domain: Docker Hub's `docker.io` is served by `registry-1`. */
export function registryHost(domain: string): string {
  return domain === DEFAULT_DOMAIN || domain === LEGACY_DEFAULT_DOMAIN ? DOCKER_HUB_HOST : domain;
}
