/**
 * The reverse proxy to `UPSTREAM_URL` (@fastify/reply-from over undici). Registered in its own
 * encapsulated scope, where every content-type parser is replaced by a pass-through so request
 * bodies stream to the upstream unparsed. Method, path, query and headers are kept;
 * `x-forwarded-for`/`-proto`/`-host` are added. An unreachable upstream answers `502`, one that
 * does not answer within `timeoutMs` answers `504`.
 */
import replyFrom from '@fastify/reply-from'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { GATEWAY_ERRORS, type GatewayErrorCode } from './errors.js'

export interface ProxyOptions {
  /** Upstream base URL (`UPSTREAM_URL`, no trailing slash). */
  readonly upstreamUrl: string
  /** Time to the upstream's response headers, and between body chunks, in ms. */
  readonly timeoutMs: number
}

/** The JSON body of a gateway error answer (Fastify's error shape plus the code). */
export function errorBody(code: GatewayErrorCode, message: string): Record<string, unknown> {
  const statusCode = GATEWAY_ERRORS[code].statusCode
  const error =
    statusCode === 502
      ? 'Bad Gateway'
      : statusCode === 504
        ? 'Gateway Timeout'
        : statusCode === 503
          ? 'Service Unavailable'
          : 'Bad Request'
  return { statusCode, code, error, message }
}

function forwardedHeaders(
  request: FastifyRequest,
  headers: Record<string, unknown>,
): Record<string, unknown> {
  const remote = request.raw.socket.remoteAddress
  const prior = request.headers['x-forwarded-for']
  const priorList = Array.isArray(prior) ? prior.join(', ') : prior
  const out: Record<string, unknown> = { ...headers }
  if (remote !== undefined) out['x-forwarded-for'] = priorList ? `${priorList}, ${remote}` : remote
  out['x-forwarded-proto'] = request.protocol
  const host = request.headers.host
  if (host !== undefined) out['x-forwarded-host'] = host
  return out
}

/** Reply with the upstream's response for this request. */
export function proxyTo(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.from(request.url, {
    rewriteRequestHeaders: (req, headers) =>
      forwardedHeaders(req as FastifyRequest, headers as Record<string, unknown>) as typeof headers,
    onError: (rep, { error }) => {
      const status = (error as { statusCode?: number }).statusCode
      const timedOut = status === 504
      const code: GatewayErrorCode = timedOut
        ? 'SLUICE_ERR_GATEWAY_UPSTREAM_TIMEOUT'
        : 'SLUICE_ERR_GATEWAY_UPSTREAM_UNAVAILABLE'
      rep.request.log.warn({ event: 'upstream.error', err: error, reqId: rep.request.id }, 'upstream failed')
      rep.code(GATEWAY_ERRORS[code].statusCode).type('application/json; charset=utf-8')
      rep.send(errorBody(code, timedOut ? GATEWAY_ERRORS[code].message : GATEWAY_ERRORS[code].message))
    },
  })
}

/**
 * Register reply-from and pass-through body parsing in `scope` (an encapsulated child of the app:
 * the other routes keep their JSON parser).
 */
export async function registerProxy(scope: FastifyInstance, opts: ProxyOptions): Promise<void> {
  scope.removeAllContentTypeParsers()
  scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload))
  await scope.register(replyFrom, {
    base: opts.upstreamUrl,
    undici: {
      connections: 128,
      pipelining: 1,
      keepAliveTimeout: 60_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    },
    // Never retry: a retried non-idempotent request would be sent twice but counted once.
    retryMethods: [],
    destroyAgent: true,
    disableRequestLogging: true,
  })
}
