/**
 * A closed-loop HTTP load driver for the suites and the soak: `concurrency` workers send
 * `total` requests (or until `until()` says stop) through one undici Pool and record status
 * counts, worst latency and selected response headers.
 */
import { Pool } from 'undici'

export interface LoadRequest {
  readonly path?: string
  readonly method?: 'GET' | 'POST'
  readonly headers?: Record<string, string | string[]>
  readonly body?: string
}

export interface LoadResult {
  /** Requests answered (any status). */
  sent: number
  /** Requests that failed at the HTTP layer (connection error / timeout). */
  errors: number
  byStatus: Map<number, number>
  /** Status counts per key (from `keyOf`). */
  byKey: Map<string, Map<number, number>>
  maxLatencyMs: number
  latencies: number[]
  /** Responses with a status >= 500 and their Retry-After header (for fail-closed checks). */
  retryAfter: Map<string, number>
  firstError: string | undefined
}

export interface LoadOptions {
  readonly origin: string
  readonly concurrency: number
  /** Total requests; or stop when `until()` returns true. */
  readonly total?: number
  readonly until?: () => boolean
  /** The i-th request. */
  readonly request: (i: number) => LoadRequest
  /** A key to group the status counts by, e.g. the appId. */
  readonly keyOf?: (i: number) => string
  /** Per-request timeout (headers+body). Default 10 s: a generous "no hang" bound. */
  readonly timeoutMs?: number
  /** Keep latencies (memory: one number per request). Default false. */
  readonly keepLatencies?: boolean
  /** Reuse a pool (e.g. across phases); else one is created and closed. */
  readonly pool?: Pool
}

function bump(m: Map<number, number>, k: number): void {
  m.set(k, (m.get(k) ?? 0) + 1)
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const pool = opts.pool ?? new Pool(opts.origin, { connections: opts.concurrency, pipelining: 1 })
  const res: LoadResult = {
    sent: 0,
    errors: 0,
    byStatus: new Map(),
    byKey: new Map(),
    maxLatencyMs: 0,
    latencies: [],
    retryAfter: new Map(),
    firstError: undefined,
  }
  const timeoutMs = opts.timeoutMs ?? 10_000
  let next = 0
  const more = () => (opts.total !== undefined ? next < opts.total : !(opts.until?.() ?? true))
  const worker = async () => {
    while (more()) {
      const i = next++
      const r = opts.request(i)
      const t0 = performance.now()
      try {
        const resp = await pool.request({
          path: r.path ?? '/',
          method: r.method ?? 'GET',
          headers: r.headers ?? {},
          body: r.body ?? null,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        })
        await resp.body.dump()
        const ms = performance.now() - t0
        res.sent++
        bump(res.byStatus, resp.statusCode)
        if (opts.keyOf) {
          const key = opts.keyOf(i)
          let m = res.byKey.get(key)
          if (!m) {
            m = new Map()
            res.byKey.set(key, m)
          }
          bump(m, resp.statusCode)
        }
        if (resp.statusCode >= 500) {
          const ra = resp.headers['retry-after']
          const k = `${resp.statusCode}:${Array.isArray(ra) ? ra.join(',') : (ra ?? '')}`
          res.retryAfter.set(k, (res.retryAfter.get(k) ?? 0) + 1)
        }
        if (ms > res.maxLatencyMs) res.maxLatencyMs = ms
        if (opts.keepLatencies) res.latencies.push(ms)
      } catch (err) {
        const ms = performance.now() - t0
        if (ms > res.maxLatencyMs) res.maxLatencyMs = ms
        res.errors++
        res.firstError ??= String(err)
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker))
  } finally {
    if (!opts.pool) await pool.close()
  }
  return res
}

/** `p`-th percentile (0..100) of `xs`. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

export function count(m: Map<number, number> | undefined, status: number): number {
  return m?.get(status) ?? 0
}
