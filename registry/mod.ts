/**
 * The registry client: image references, manifests, platforms, auth and the distribution API.
 * It knows nothing about containers or the local store.
 *
 * @example
 * ```ts
 * import { parseManifest, parseReference, RegistryClient, selectManifest } from "./mod.ts";
 * const client = new RegistryClient();
 * const ref = parseReference("nginx");
 * const top = await client.getManifest(ref);
 * const parsed = parseManifest(top.bytes, top.mediaType);
 * ```
 *
 * @module
 */
export {
  DEFAULT_DOMAIN,
  DEFAULT_TAG,
  DOCKER_HUB_HOST,
  familiarRepository,
  InvalidReferenceError,
  isValidDomain,
  parseReference,
  Reference,
  registryHost,
  validateDigest,
  withDigest,
  withTag,
} from "./reference.ts";
export {
  type Compression,
  type ContainerConfig,
  type Descriptor,
  type DescriptorPlatform,
  type HealthConfig,
  type HistoryEntry,
  type ImageConfig,
  type ImageIndex,
  imageLayers,
  type ImageManifest,
  layerCompression,
  MANIFEST_MEDIA_TYPES,
  MediaType,
  type ParsedManifest,
  parseImageConfig,
  parseManifest,
} from "./manifest.ts";
export {
  formatPlatform,
  hostPlatform,
  InvalidPlatformError,
  isAttestation,
  NoMatchingPlatformError,
  normalizePlatform,
  parsePlatform,
  type Platform,
  selectManifest,
} from "./platform.ts";
export {
  basicAuthorization,
  type Challenge,
  type Credentials,
  credentialsFromConfig,
  DOCKER_HUB_AUTH_KEY,
  dockerConfigPath,
  loadCredentials,
  parseWwwAuthenticate,
  removeCredentials,
  saveCredentials,
  TokenStore,
  type TokenStoreOptions,
} from "./auth.ts";
export {
  type BlobResponse,
  type ManifestResponse,
  RegistryClient,
  type RegistryClientOptions,
  type UploadResult,
} from "./client.ts";
export {
  BlockedRegistryError,
  type Endpoint,
  findRegistry,
  loadRegistriesConf,
  pullEndpoints,
  pushEndpoint,
  qualifyName,
  type RegistriesConf,
  RegistriesConfError,
  type RegistryEntry,
  type RegistryMirror,
} from "./registries_conf.ts";
export {
  DigestMismatchError,
  InvalidManifestError,
  NotFoundError,
  RegistryError,
  type RegistryErrorCode,
  type RegistryErrorDetail,
  UnauthorizedError,
  UnsupportedMediaTypeError,
} from "./errors.ts";
