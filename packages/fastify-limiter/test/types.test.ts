// Type tests: compiled by `tsc -p tsconfig.json` (typecheck); the runtime part checks the same surface exists.
import type { Decision, RateLimitConfig, Store } from '@sluice/limiter-core'
import { expectTypeOf } from 'expect-type'
import Fastify, { type FastifyContextConfig, type FastifyPluginAsync, type FastifyRequest } from 'fastify'
import type { Cluster, Redis } from 'ioredis'
import { Registry } from 'prom-client'
import t from 'tap'
import sluiceLimiter, {
  sluiceLimiter as named,
  type RateLimitInfo,
  type RouteRateLimitOptions,
  type SluiceDecorator,
  type SluiceLimiterOptions,
} from '../src/index.js'

expectTypeOf<SluiceLimiterOptions['redis']>().toEqualTypeOf<Redis | Cluster | undefined>()
expectTypeOf<SluiceLimiterOptions['store']>().toEqualTypeOf<Store | undefined>()
expectTypeOf<SluiceLimiterOptions['config']>().toEqualTypeOf<RateLimitConfig | undefined>()
expectTypeOf<SluiceLimiterOptions['appIdHeader']>().toEqualTypeOf<string | undefined>()
expectTypeOf<SluiceLimiterOptions['unknownAppPolicy']>().toEqualTypeOf<'default' | 'reject' | undefined>()
expectTypeOf<SluiceLimiterOptions['keyGenerator']>().toEqualTypeOf<
  ((request: FastifyRequest) => string | null | undefined) | undefined
>()
expectTypeOf<FastifyContextConfig['rateLimit']>().toEqualTypeOf<RouteRateLimitOptions | false | undefined>()
expectTypeOf<RouteRateLimitOptions['cost']>().toEqualTypeOf<number | undefined>()
expectTypeOf<FastifyRequest['rateLimit']>().toEqualTypeOf<RateLimitInfo | null>()
expectTypeOf<RateLimitInfo['decision']>().toEqualTypeOf<Decision | null>()
expectTypeOf<SluiceDecorator['check']>().returns.resolves.toEqualTypeOf<RateLimitInfo>()
expectTypeOf(named).toEqualTypeOf(sluiceLimiter)
expectTypeOf(sluiceLimiter).toMatchTypeOf<FastifyPluginAsync<SluiceLimiterOptions>>()

const app = Fastify()
// Options are type-checked at register().
app.register(sluiceLimiter, { appIdHeader: 'x-tenant', unknownAppPolicy: 'reject', registry: new Registry() })
// @ts-expect-error unknownAppPolicy is a closed union
app.register(sluiceLimiter, { unknownAppPolicy: 'maybe' })
app.get('/a', { config: { rateLimit: false } }, async () => 'a')
app.get(
  '/b',
  {
    config: {
      rateLimit: { cost: 2, limits: [{ name: 'b', algorithm: 'fixed-window', limit: 1, windowMs: 1000 }] },
    },
  },
  async (request) => {
    expectTypeOf(request.rateLimit).toEqualTypeOf<RateLimitInfo | null>()
    return 'b'
  },
)
const leaky = { limits: [{ name: 'd', algorithm: 'leaky', limit: 1, windowMs: 1 }] } as const
// @ts-expect-error unknown algorithm
app.get('/d', { config: { rateLimit: leaky } }, async () => 'd')

t.test('the typed surface exists at run time', async (t) => {
  await t.rejects(async () => {
    await app.ready()
  }, /unknownAppPolicy/)
  await app.close()
  const ok = Fastify()
  t.teardown(() => ok.close())
  await ok.register(named, { registry: new Registry() })
  t.type(ok.sluice.check, 'function')
  t.type(ok.sluice.writeHeaders, 'function')
  t.equal(ok.hasRequestDecorator('rateLimit'), true)
})
