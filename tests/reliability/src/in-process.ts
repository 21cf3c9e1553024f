/**
 * The gateway in this process: `loadSettings(env)` + `createApp(settings, { logStream })`, with
 * every JSON log line counted by `event` and the first ones kept. Requests go through
 * `app.inject` (the whole Fastify pipeline, no socket), so a suite can send tens of thousands of
 * requests cheaply and sample this process's heap.
 */
import { createApp, type Gateway, loadSettings } from '@sluice/gateway'
import { parseMetrics, type Sample } from './metrics.js'

export interface InProcessGateway {
  readonly gw: Gateway
  readonly events: Map<string, number>
  readonly logs: Record<string, unknown>[]
  /** Total log lines written. */
  lines(): number
  metrics(): Promise<Sample[]>
  request(appId: string | null, path?: string): Promise<TimedResponse>
  close(): Promise<void>
}

export interface TimedResponse {
  readonly status: number
  readonly headers: Record<string, string | string[] | number | undefined>
  readonly body: string
  readonly ms: number
  json(): Record<string, unknown>
}

export async function startInProcess(
  env: Record<string, string>,
  maxLogs = 5_000,
): Promise<InProcessGateway> {
  const events = new Map<string, number>()
  const logs: Record<string, unknown>[] = []
  let lines = 0
  const logStream = {
    write(msg: string) {
      lines++
      try {
        const o = JSON.parse(msg) as Record<string, unknown>
        if (typeof o.event === 'string') events.set(o.event, (events.get(o.event) ?? 0) + 1)
        if (logs.length < maxLogs) logs.push(o)
      } catch {
        // not JSON: counted only
      }
    },
  }
  const settings = loadSettings({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env })
  const gw = await createApp(settings, { logStream })
  return {
    gw,
    events,
    logs,
    lines: () => lines,
    async metrics() {
      const r = await gw.app.inject({ method: 'GET', url: '/metrics' })
      return parseMetrics(r.body)
    },
    async request(appId, path = '/x') {
      const t0 = performance.now()
      const r = await gw.app.inject({
        method: 'GET',
        url: path,
        headers: appId === null ? {} : { 'x-app-id': appId },
      })
      const ms = performance.now() - t0
      return {
        status: r.statusCode,
        headers: r.headers,
        body: r.body,
        ms,
        json: () => JSON.parse(r.body) as Record<string, unknown>,
      }
    },
    close: () => gw.close(),
  }
}
