/**
 * Assertions for tests. `@std/assert` lives on JSR, which our machines cannot reach, so the tests
 * use node:assert under the names Deno users know.
 *
 * @module
 */
import assert from "node:assert/strict";

/** Asserts deep equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  assert.deepStrictEqual(actual, expected, message);
}

/** Asserts deep inequality. */
export function assertNotEquals<T>(actual: T, expected: T, message?: string): void {
  assert.notDeepStrictEqual(actual, expected, message);
}

/** Asserts that a value is truthy. */
export function assertOk(value: unknown, message?: string): asserts value {
  assert.ok(value, message);
}

/** Asserts that a string matches a pattern. */
export function assertMatch(actual: string, pattern: RegExp, message?: string): void {
  assert.match(actual, pattern, message);
}

/** Asserts that a string contains a substring. */
export function assertStringIncludes(actual: string, expected: string, message?: string): void {
  assert.ok(
    actual.includes(expected),
    message ?? `expected ${JSON.stringify(actual)} to include ${JSON.stringify(expected)}`,
  );
}

/** Asserts that an async function rejects, optionally with an error of a class and message. */
export async function assertRejects<E extends Error = Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  errorClass?: new (...args: any[]) => E,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (err) {
    if (errorClass && !(err instanceof errorClass)) {
      throw new assert.AssertionError({ message: `expected ${errorClass.name}, got ${err}` });
    }
    if (includes && !String((err as Error).message).includes(includes)) {
      throw new assert.AssertionError({
        message: `expected message to include ${JSON.stringify(includes)}: ${
          (err as Error).message
        }`,
      });
    }
    return err as E;
  }
  throw new assert.AssertionError({ message: "expected the function to reject" });
}

/** Asserts that a function throws, optionally with an error of a class. */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  errorClass?: new (...args: any[]) => E,
  includes?: string,
): E {
  try {
    fn();
  } catch (err) {
    if (errorClass && !(err instanceof errorClass)) {
      throw new assert.AssertionError({ message: `expected ${errorClass.name}, got ${err}` });
    }
    if (includes && !String((err as Error).message).includes(includes)) {
      throw new assert.AssertionError({
        message: `expected message to include ${JSON.stringify(includes)}: ${
          (err as Error).message
        }`,
      });
    }
    return err as E;
  }
  throw new assert.AssertionError({ message: "expected the function to throw" });
}
