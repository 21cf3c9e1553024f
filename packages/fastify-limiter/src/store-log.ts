/**
 * `ratelimit.store_error` lines, rate-limited so an outage does not flood the log: at most one line
 * per second per kind; the next line says how many were suppressed in between.
 */
import type { FastifyBaseLogger } from 'fastify'

export class StoreErrorLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>()
  private readonly now: () => number
  readonly intervalMs: number

  constructor(now: () => number, intervalMs = 1000) {
    this.now = now
    this.intervalMs = intervalMs
  }

  /** Log one store failure (or a circuit-open skip) unless a line of this kind was logged within the interval. */
  report(
    log: FastifyBaseLogger,
    kind: string,
    appId: string | null,
    message: string,
    extra: Record<string, unknown> = {},
  ): void {
    const t = this.now()
    const state = this.last.get(kind)
    if (state !== undefined && t - state.at < this.intervalMs) {
      state.suppressed++
      return
    }
    const suppressed = state?.suppressed ?? 0
    this.last.set(kind, { at: t, suppressed: 0 })
    log.error({ event: 'ratelimit.store_error', appId, kind, suppressed, ...extra }, message)
  }
}
