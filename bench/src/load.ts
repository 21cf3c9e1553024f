/**
 * The load generator, a separate process (forked by run.ts, pinned to its own core).
 * On `{ type: 'run', ...LoadRequest }` it runs autocannon and answers `{ type: 'result', ...LoadResult }`.
 */
import autocannon from 'autocannon'

export interface LoadRequest {
  readonly url: string
  readonly durationS: number
  /** When set, send this many requests instead of running for `durationS` (warm-ups). */
  readonly amount?: number
  readonly connections: number
  /** Each entry is sent in turn on every connection (autocannon `requests`). */
  readonly appIds: readonly string[]
}

export interface LoadResult {
  readonly requests: number
  readonly durationS: number
  readonly rps: number
  readonly p50Ms: number
  readonly p90Ms: number
  readonly p99Ms: number
  readonly ok2xx: number
  readonly status429: number
  readonly otherStatus: number
  readonly errors: number
  readonly timeouts: number
}

async function runLoad(req: LoadRequest): Promise<LoadResult> {
  const result = await autocannon({
    url: req.url,
    ...(req.amount !== undefined ? { amount: req.amount } : { duration: req.durationS }),
    connections: req.connections,
    pipelining: 1,
    requests: req.appIds.map((id) => ({ method: 'GET', path: '/', headers: { 'x-app-id': id } })),
  })
  const codes =
    (result as unknown as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats ?? {}
  const status429 = codes['429']?.count ?? 0
  const durationS = result.duration
  const total = result['1xx'] + result['2xx'] + result['3xx'] + result['4xx'] + result['5xx']
  return {
    requests: total,
    durationS,
    rps: total / durationS,
    p50Ms: result.latency.p50,
    p90Ms: result.latency.p90,
    p99Ms: result.latency.p99,
    ok2xx: result['2xx'],
    status429,
    otherStatus: total - result['2xx'] - status429,
    errors: result.errors,
    timeouts: result.timeouts,
  }
}

process.on('message', (msg: { type: string } & LoadRequest) => {
  if (msg.type === 'run') {
    runLoad(msg).then(
      (r) => process.send?.({ type: 'result', ...r }),
      (err: unknown) => process.send?.({ type: 'error', message: String(err) }),
    )
  } else if (msg.type === 'exit') {
    process.exit(0)
  }
})
process.send?.({ type: 'ready' })
