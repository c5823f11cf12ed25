/** A number setting of the benchmarks from the environment: `fallback` when unset, an error naming it when it is not a number of at least `min`. */
export function num(
  name: string,
  fallback: number,
  min = Number.MIN_VALUE,
): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min) {
    throw new Error(
      `${name} must be ${min === Number.MIN_VALUE ? "a positive number" : `a number of at least ${min}`}, got "${text}"`,
    );
  }
  return value;
}
