import { assertEquals, assertStringIncludes, assertThrows } from "../tests/assert.ts";
import {
  familiarRepository,
  InvalidReferenceError,
  parseReference,
  registryHost,
  withDigest,
  withTag,
} from "./reference.ts";

const D = "sha256:" + "f".repeat(64);
const D2 = "sha256:" + "0123456789abcdef".repeat(4);

// [input, domain, path, tag, digest, full string, familiar string]
// deno-fmt-ignore
const valid: [string, string, string, string | undefined, string | undefined, string, string][] = [
  ["nginx", "docker.io", "library/nginx", "latest", undefined, "docker.io/library/nginx:latest", "nginx:latest"],
  ["nginx:1.25", "docker.io", "library/nginx", "1.25", undefined, "docker.io/library/nginx:1.25", "nginx:1.25"],
  ["user/app:1.2", "docker.io", "user/app", "1.2", undefined, "docker.io/user/app:1.2", "user/app:1.2"],
  ["docker.io/library/nginx", "docker.io", "library/nginx", "latest", undefined, "docker.io/library/nginx:latest", "nginx:latest"],
  ["index.docker.io/user/app", "docker.io", "user/app", "latest", undefined, "docker.io/user/app:latest", "user/app:latest"],
  ["docker.io/nginx", "docker.io", "library/nginx", "latest", undefined, "docker.io/library/nginx:latest", "nginx:latest"],
  ["library/foo/bar", "docker.io", "library/foo/bar", "latest", undefined, "docker.io/library/foo/bar:latest", "library/foo/bar:latest"],
  [`host:5000/ns/app@${D}`, "host:5000", "ns/app", undefined, D, `host:5000/ns/app@${D}`, `host:5000/ns/app@${D}`],
  [`app:tag@${D}`, "docker.io", "library/app", "tag", D, `docker.io/library/app:tag@${D}`, `app:tag@${D}`],
  ["localhost/app", "localhost", "app", "latest", undefined, "localhost/app:latest", "localhost/app:latest"],
  ["localhost:5000/app:v1", "localhost:5000", "app", "v1", undefined, "localhost:5000/app:v1", "localhost:5000/app:v1"],
  ["127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", undefined, "127.0.0.1:5000/app:latest", "127.0.0.1:5000/app:latest"],
  ["host:5000/app:tag", "host:5000", "app", "tag", undefined, "host:5000/app:tag", "host:5000/app:tag"],
  ["[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "repo", "latest", undefined, "[2001:db8::1]:5000/repo:latest", "[2001:db8::1]:5000/repo:latest"],
  // A name without a slash is a Docker Hub repository even when it looks like host:port.
  ["test.com:5000", "docker.io", "library/test.com", "5000", undefined, "docker.io/library/test.com:5000", "test.com:5000"],
  ["foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080", undefined, "docker.io/foo/foo_bar.com:8080", "foo/foo_bar.com:8080"],
  ["test_com", "docker.io", "library/test_com", "latest", undefined, "docker.io/library/test_com:latest", "test_com:latest"],
  ["sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux", "latest", undefined, "sub-dom1.foo.com/bar/baz/quux:latest", "sub-dom1.foo.com/bar/baz/quux:latest"],
  ["lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase", undefined, "docker.io/library/lowercase:Uppercase", "lowercase:Uppercase"],
  ["a__b/c--d.e", "docker.io", "a__b/c--d.e", "latest", undefined, "docker.io/a__b/c--d.e:latest", "a__b/c--d.e:latest"],
  ["xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", undefined, "xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com/myimage:xn--n3h.com"],
  [`quay.io/a/b@${D2}`, "quay.io", "a/b", undefined, D2, `quay.io/a/b@${D2}`, `quay.io/a/b@${D2}`],
];

for (const [input, domain, path, tag, digest, full, familiar] of valid) {
  Deno.test(`parseReference accepts ${input}`, () => {
    const ref = parseReference(input);
    assertEquals(
      { domain: ref.domain, path: ref.path, tag: ref.tag, digest: ref.digest },
      { domain, path, tag, digest },
    );
    assertEquals(ref.toString(), full);
    assertEquals(ref.familiar(), familiar);
    assertEquals(ref.repository, `${domain}/${path}`);
    // The full form is a fixed point of normalisation.
    assertEquals(parseReference(full).toString(), full);
  });
}

const invalid: [string, string][] = [
  ["", "at least one component"],
  [":justtag", "grammar"],
  [`@${D}`, "grammar"],
  ["Uppercase:tag", "must be lowercase"],
  ["test:5000/Uppercase/lowercase:tag", "must be lowercase"],
  ["docker.io/User/app", "must be lowercase"],
  ["aa/asdf$$^/aa", "grammar"],
  ["-foo", "grammar"],
  ["foo-/bar", "grammar"],
  ["foo//bar", "grammar"],
  ["a:b:c", "grammar"],
  ["app:" + "t".repeat(129), "grammar"],
  ["repo@sha256:" + "f".repeat(63), "digest length"],
  ["validname@invaliddigest:" + "f".repeat(64), "unsupported digest algorithm"],
  ["repo@sha256:" + "F".repeat(64), "lowercase"],
  ["a".repeat(256), "not be more than 255"],
  ["f".repeat(64), "64-byte hexadecimal"],
  ["[fe80::1%eth0]:5000/repo", "grammar"],
  ["host:port/app", "grammar"],
];

for (const [input, reason] of invalid) {
  Deno.test(`parseReference rejects ${JSON.stringify(input.slice(0, 40))}`, () => {
    const err = assertThrows(() => parseReference(input), InvalidReferenceError);
    assertStringIncludes(err.message, reason);
    assertEquals(err.input, input);
  });
}

Deno.test("familiarRepository strips docker.io and library/ only for official images", () => {
  assertEquals(familiarRepository(parseReference("nginx")), "nginx");
  assertEquals(familiarRepository(parseReference("user/app")), "user/app");
  assertEquals(familiarRepository(parseReference("library/a/b")), "library/a/b");
  assertEquals(familiarRepository(parseReference("host:5000/app")), "host:5000/app");
});

Deno.test("withTag drops the digest, withDigest keeps the tag", () => {
  const ref = parseReference(`app:v1@${D}`);
  assertEquals(withTag(ref, "v2").toString(), "docker.io/library/app:v2");
  assertEquals(ref.withTag("v2").digest, undefined);
  assertEquals(
    withDigest(parseReference("app:v1"), D2).toString(),
    `docker.io/library/app:v1@${D2}`,
  );
  assertThrows(() => withTag(ref, "-bad"), InvalidReferenceError);
  assertThrows(() => withDigest(ref, "sha256:abc"), InvalidReferenceError);
});

Deno.test("the digest wins over the tag as the identifier to fetch", () => {
  assertEquals(parseReference(`app:v1@${D}`).identifier, D);
  assertEquals(parseReference("app:v1").identifier, "v1");
});

Deno.test("registryHost maps Docker Hub to registry-1.docker.io", () => {
  assertEquals(registryHost(parseReference("nginx").domain), "registry-1.docker.io");
  assertEquals(registryHost("index.docker.io"), "registry-1.docker.io");
  assertEquals(registryHost("localhost:5000"), "localhost:5000");
});
