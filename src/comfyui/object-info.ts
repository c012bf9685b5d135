/**
 * The node types a running ComfyUI knows: the keys of `GET /object_info` (every node class it
 * loaded, its own and custom nodes'). Read once per ComfyUI launch: the answer is large and does
 * not change until ComfyUI restarts.
 */
let cached: { key: string; types: Promise<ReadonlySet<string> | undefined> } | undefined;

export function installedNodeTypes(port: number, launch: string): Promise<ReadonlySet<string> | undefined> {
  const key = `${port}:${launch}`;
  if (cached?.key !== key) {
    const types = fetchTypes(port);
    cached = { key, types };
    // A failed read is retried on the next call, not remembered.
    void types.then((t) => {
      if (!t && cached?.types === types) cached = undefined;
    });
  }
  return cached.types;
}

async function fetchTypes(port: number): Promise<ReadonlySet<string> | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/object_info`, { signal: AbortSignal.timeout(15_000) });
    if (!res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    const body = (await res.json()) as unknown;
    return body && typeof body === 'object' && !Array.isArray(body) ? new Set(Object.keys(body)) : undefined;
  } catch {
    return undefined;
  }
}
