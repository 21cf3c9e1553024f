/**
 * `POST /v1/check` `{"appId":"…","cost":1}` -> `200 {"allowed","limits":[…],"retryAfterMs"}`:
 * a decision for callers that are not behind the gateway. It counts like a request (same config,
 * fail modes, metrics and logs), but the route itself is exempt from request rate limiting. When a
 * JWT key is configured it needs a bearer token with scope `ratelimit:check` (401/403 as for the
 * admin API), otherwise anyone could spend any app's budget.
 */
import { requireScope, sluiceAuth } from '@sluice/admin-plugin'
import type { FastifyInstance } from 'fastify'
import { jwtOptions } from './admin.js'
import { errorBody } from './proxy.js'
import { hasJwtKey, type Settings } from './settings.js'

const bodySchema = {
  type: 'object',
  required: ['appId'],
  additionalProperties: false,
  properties: {
    appId: { type: 'string', minLength: 1, maxLength: 128 },
    cost: { type: 'integer', minimum: 1, maximum: 1_000_000_000, default: 1 },
  },
} as const

interface CheckBody {
  appId: string
  cost: number
}

/** Register the route in `scope`, where `scope.sluice` (the limiter) is available. */
export async function registerCheck(scope: FastifyInstance, settings: Settings): Promise<void> {
  await scope.register(async (check) => {
    const guarded = hasJwtKey(settings)
    if (guarded) await check.register(sluiceAuth, { jwt: jwtOptions(settings) })
    check.setErrorHandler((err, _request, reply) => {
      const e = err as { validation?: unknown; statusCode?: number; message: string; code?: string }
      if (e.validation !== undefined || e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || e.statusCode === 400) {
        return reply.code(400).send(errorBody('SLUICE_ERR_GATEWAY_CHECK_BODY', e.message))
      }
      return reply.send(err)
    })
    check.post<{ Body: CheckBody }>(
      '/v1/check',
      {
        config: { rateLimit: false },
        schema: { body: bodySchema },
        // Fastify's validator coerces types ("1e3", true, [3] would pass as a cost): check the JSON
        // types as sent, before validation.
        preValidation: async (request, reply) => {
          const body = request.body as unknown as Record<string, unknown> | null
          if (body === null || typeof body !== 'object' || Array.isArray(body)) return
          const badCost = body.cost !== undefined && typeof body.cost !== 'number'
          if (typeof body.appId !== 'string' || badCost) {
            return reply
              .code(400)
              .send(
                errorBody(
                  'SLUICE_ERR_GATEWAY_CHECK_BODY',
                  badCost ? 'body/cost must be an integer >= 1' : 'body/appId must be a string',
                ),
              )
          }
        },
        ...(guarded ? { onRequest: requireScope('ratelimit:check') } : {}),
      },
      async (request, reply) => {
        const { appId, cost } = request.body
        let info: Awaited<ReturnType<typeof check.sluice.check>>
        try {
          info = await check.sluice.check(appId, cost, { ip: request.ip, log: request.log })
        } catch (err) {
          const e = err as { statusCode?: number; code?: string; message: string }
          if (e.statusCode === 400 || e.statusCode === 403) {
            return reply.code(e.statusCode).send({
              statusCode: e.statusCode,
              error: e.statusCode === 400 ? 'Bad Request' : 'Forbidden',
              code: e.code,
              message: e.message,
            })
          }
          throw err
        }
        if (info.outcome === 'fail_closed') {
          // The store failed and the app's failMode is `closed`: the same 503 a request would get.
          return reply.code(503).header('retry-after', '1').send({
            statusCode: 503,
            error: 'Service Unavailable',
            message: 'rate-limit store unavailable (failMode closed)',
            appId,
          })
        }
        check.sluice.writeHeaders(reply, info)
        const d = info.decision
        return {
          allowed: info.allowed,
          limits: (d?.limits ?? []).map((l) => ({
            name: l.name,
            limit: l.limit,
            remaining: l.remaining,
            resetMs: l.resetMs,
          })),
          retryAfterMs: info.allowed ? 0 : (d?.retryAfterMs ?? 1000),
        }
      },
    )
  })
}
