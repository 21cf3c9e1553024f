/**
 * `GET /healthz` (liveness: the process can serve; never touches Redis) and `GET /readyz`
 * (readiness: Redis answers PING within the timeout and the default config exists; on the
 * embedded store always ready). While the app is closing, /readyz answers 503 so load balancers
 * stop sending before the listener goes away.
 */
import type { FastifyInstance } from 'fastify'

/** The outcome of a readiness probe: ready, or the reason why not. */
export type Readiness = { readonly ready: true } | { readonly ready: false; readonly reason: string }

/** Checks readiness; must settle within its own timeout and never throw. */
export type ReadinessProbe = () => Promise<Readiness>

/** Bound a promise by `ms`; rejects with `message` past it. The timer never keeps the process alive. */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(message)), ms)
    timer.unref()
    p.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (err: unknown) => {
        clearTimeout(timer)
        reject(err)
      },
    )
  })
}

const noCache = { 'cache-control': 'no-store' }

/** Register /healthz and /readyz on `app`. `isClosing` reports a drain in progress. */
export function registerHealth(app: FastifyInstance, probe: ReadinessProbe, isClosing: () => boolean): void {
  app.get('/healthz', { logLevel: 'warn' }, async (_req, reply) => {
    reply.headers(noCache)
    return { status: 'ok' }
  })
  app.get('/readyz', { logLevel: 'warn' }, async (_req, reply) => {
    reply.headers(noCache)
    if (isClosing()) return reply.code(503).send({ status: 'unavailable', reason: 'shutting down' })
    const r = await probe()
    if (r.ready) return { status: 'ready' }
    return reply.code(503).send({ status: 'unavailable', reason: r.reason })
  })
}
